"""Reading docker-compose.yml as compose would: `${VAR:-default}` resolved to its default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>[^}]*))?\}")


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def variables_in(value: str) -> list[str]:
    return [match["name"] for match in _VARIABLE.finditer(value)]


def resolve(value: str) -> str:
    """The value compose uses when none of the variables is set in the environment."""
    return _VARIABLE.sub(lambda match: match["default"] or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: resolve(str(value)) for name, value in service.get("environment", {}).items()}


def option(command: list[str], name: str) -> str:
    """The value after `name` in a command list, e.g. option(command, "--port")."""
    return command[command.index(name) + 1]

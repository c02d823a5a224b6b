"""The package's layout is its architecture: imports run one way, from sources down to Lark."""

from __future__ import annotations

import ast
from pathlib import Path

import lark_alert_middleware

PACKAGE = Path(lark_alert_middleware.__file__).parent
# Lowest first: a module may import modules of its own layer or of the layers below it.
LAYERS = [
    {"_version", "_records", "_stats", "_secret_names", "_redis_url"},
    {"_lark"},
    {"_config", "_routes_config"},
    {"_card"},
    {"_pipeline"},
    {"_sources"},
    {"__init__", "__main__", "cli", "preview", "testing", "pytest_plugin", "relay"},
]
PUBLIC_MODULES = {"__init__", "__main__", "cli", "preview", "testing", "pytest_plugin", "relay"}


def layer_of(top: str) -> int:
    return next(index for index, names in enumerate(LAYERS) if top in names)


def imported_tops(path: Path) -> set[str]:
    """The package's top-level modules or subpackages that `path` imports."""
    own = path.relative_to(PACKAGE).parts
    tops = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(own[:-1])[: len(own) - node.level]
            parts = [*base, *(node.module or "").split(".")] if node.module else base
            if parts and parts[0]:
                tops.add(parts[0])
            else:  # `from . import x` at the package root
                tops.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lark_alert_middleware"):
            parts = (node.module or "").split(".")
            tops.add(parts[1] if len(parts) > 1 else "__init__")
    return tops


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer() -> None:
    for path in modules():
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert any(top in names for names in LAYERS), f"{path.name}: in no layer"


def test_imports_run_one_way_from_sources_down_to_lark() -> None:
    wrong = []
    for path in modules():
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for imported in imported_tops(path):
            if imported != top and layer_of(imported) > layer_of(top):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert wrong == []


def test_no_module_imports_the_package_root() -> None:
    importers = [
        path for path in modules() if path.name != "__main__.py" and "__init__" in imported_tops(path)
    ]
    assert importers == []


def test_only_the_documented_modules_look_public() -> None:
    public = {path.stem for path in PACKAGE.glob("*.py") if not path.stem.startswith("_")}
    public |= {path.name for path in PACKAGE.iterdir() if path.is_dir() and not path.name.startswith("_")}
    assert public <= PUBLIC_MODULES, public - PUBLIC_MODULES

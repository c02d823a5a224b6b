"""Validating a tool's JSON payload: one call, and a message naming each field that is wrong."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

Model = TypeVar("Model", bound=BaseModel)
# Problems named in one answer: a payload wrong everywhere must not make a megabyte of message.
PROBLEMS_SHOWN = 5


class PayloadError(ValueError):
    """The body is not the JSON the endpoint takes; the message says where and why (a 400)."""


class Payload(BaseModel):
    """A tool's JSON object: unknown fields are ignored (tools add fields between versions)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def validated(model: type[Model], body: bytes) -> Model:
    """`body` as `model`; PayloadError naming the fields that are wrong (`alerts[0].labels`)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise PayloadError(describe(error)) from None


def describe(error: ValidationError) -> str:
    items = error.errors(include_url=False, include_context=False, include_input=False)
    problems = [f"{_where(item['loc'])}: {item['msg']}" for item in items[:PROBLEMS_SHOWN]]
    more = len(items) - PROBLEMS_SHOWN
    if more > 0:
        problems.append(f"and {more} more")
    return "; ".join(problems)


def _where(location: tuple[Any, ...]) -> str:
    """`alerts[0].labels.severity`; the body itself when the JSON could not be read at all."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{str(part)[:100]}" if text else str(part)[:100]
    return text or "body"

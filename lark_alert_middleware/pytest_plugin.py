"""pytest fixtures for `lark_alert_middleware.testing`, registered when the package is installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .testing import LarkReceiver


@pytest.fixture
def lark_receiver() -> Iterator[LarkReceiver]:
    """A started Lark-compatible webhook with default settings (no secret, no keyword)."""
    with LarkReceiver() as receiver:
        yield receiver


@pytest.fixture
def make_lark_receiver() -> Iterator[Callable[..., LarkReceiver]]:
    """Start receivers with options (`secret=`, `keyword=`, `delay=`...); all stopped after the test."""
    started: list[LarkReceiver] = []

    def make(**options: Any) -> LarkReceiver:
        receiver = LarkReceiver(**options).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()

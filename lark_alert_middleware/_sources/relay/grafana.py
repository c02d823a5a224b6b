"""`POST /grafana`: a Grafana webhook contact point's payload, and its HMAC signature.

The payload is Alertmanager's (`alertmanager.py`) with more per alert: links to silence it
and to its dashboard and panel, and the values that fired it. With a secret configured in the
contact point's "HMAC Signature" settings, Grafana signs each request: `X-Grafana-Alerting-Signature`
is the hex HMAC-SHA256 of the body, or of `<timestamp>:<body>` when a timestamp header is
configured (the README names `X-Grafana-Alerting-Timestamp`, which the relay reads).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from pydantic import Field

from .alertmanager import (
    AlertmanagerAlert,
    AlertmanagerEvents,
    AlertmanagerNotification,
    Links,
    Pairs,
    relayed,
    runbook_of,
)
from .alerts import Notification, links
from .payload import validated

SIGNATURE_HEADER = b"x-grafana-alerting-signature"
TIMESTAMP_HEADER = b"x-grafana-alerting-timestamp"
# How far a signed timestamp may be from this machine's clock, either way.
SIGNATURE_TOLERANCE_SECONDS = 300

Value = float | int | str | None


class GrafanaAlert(AlertmanagerAlert):
    silence_url: str = Field("", alias="silenceURL")
    dashboard_url: str = Field("", alias="dashboardURL")
    panel_url: str = Field("", alias="panelURL")
    image_url: str = Field("", alias="imageURL")
    value_string: str = Field("", alias="valueString")
    values: dict[str, Value] | None = None


class GrafanaNotification(AlertmanagerNotification):
    alerts: tuple[GrafanaAlert, ...]
    org_id: int | None = Field(None, alias="orgId")
    title: str = ""
    state: str = ""
    message: str = ""


def notification_of(body: bytes) -> Notification:
    """The alerts of a Grafana notification; PayloadError names what is wrong with it."""
    payload = validated(GrafanaNotification, body)
    return relayed(GrafanaEvents(payload), len(body))


class GrafanaEvents(AlertmanagerEvents):
    tool = "grafana"
    tool_name = "Grafana"

    def links(self, alert: AlertmanagerAlert, firing: bool) -> Links:
        assert isinstance(alert, GrafanaAlert)  # a GrafanaNotification holds only those
        return links(
            ("Dashboard", alert.dashboard_url),
            ("Panel", alert.panel_url),
            ("Silence", alert.silence_url if firing else None),
            ("Runbook", runbook_of(alert)),
            ("Alert rule", alert.generator_url),
        )

    def details(self, alert: AlertmanagerAlert) -> Pairs:
        assert isinstance(alert, GrafanaAlert)
        if alert.values:
            return (
                ("Values", ", ".join(f"{name}={_number(value)}" for name, value in alert.values.items())),
            )
        if alert.value_string:
            return (("Value", alert.value_string),)
        return ()


def _number(value: Value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def signature_is_valid(
    secret: bytes, body: bytes, signature: bytes | None, timestamp: bytes | None, now: float | None = None
) -> bool:
    """Whether Grafana signed `body` (and `timestamp`, if sent, within the tolerance) with `secret`."""
    if not signature:
        return False
    message = body
    if timestamp:
        try:
            signed_at = int(timestamp)
        except ValueError:
            return False
        if abs((time.time() if now is None else now) - signed_at) > SIGNATURE_TOLERANCE_SECONDS:
            return False
        message = timestamp + b":" + body
    expected = hmac.new(secret, message, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, signature.strip().lower())

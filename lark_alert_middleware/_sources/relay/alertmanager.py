"""`POST /alertmanager`: Alertmanager's webhook payload (version 4), one alert per card.

Each alert is known by Alertmanager's own fingerprint (by a hash of its labels when there is
none) and is `firing` since its `startsAt`, or `resolved`. Grafana sends the same shape with
more fields (`grafana.py`), and reuses what is here.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal
from urllib.parse import quote

from pydantic import Field

from ..._card.spoken import duration
from ..._pipeline.fingerprint import relay_fingerprint
from ..._records import RELAY, ErrorEvent
from .alerts import (
    LINK_CHARACTERS,
    MESSAGE_CHARACTERS,
    NAME_CHARACTERS,
    SUBJECT_CHARACTERS,
    Notification,
    RelayedAlert,
    cut,
    epoch,
    labels_hash,
    level_of,
    links,
    now_or,
    pairs,
)
from .payload import Payload, validated

# Alertmanager's fingerprints are 16 hex digits; anything else is not one (and not trusted as a key).
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{1,64}")
# Annotations shown elsewhere than among the fields: as the message, or as a button.
MESSAGE_ANNOTATIONS = ("summary", "description")
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook")
# Labels named in a title to tell an alert apart from the rest of its group.
DISTINCT_LABELS_SHOWN = 3

Status = Literal["firing", "resolved"]
Labels = dict[str, str]
Links = tuple[tuple[str, str], ...]
Pairs = tuple[tuple[str, str], ...]


class AlertmanagerAlert(Payload):
    status: Status
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    starts_at: datetime | None = Field(None, alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = ""


class AlertmanagerNotification(Payload):
    version: str = "4"
    status: Status = "firing"
    receiver: str = ""
    group_key: str = Field("", alias="groupKey")
    group_labels: Labels = Field(default_factory=dict, alias="groupLabels")
    common_labels: Labels = Field(default_factory=dict, alias="commonLabels")
    common_annotations: Labels = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts")
    alerts: tuple[AlertmanagerAlert, ...]


def notification_of(body: bytes) -> Notification:
    """The alerts of an Alertmanager notification; PayloadError names what is wrong with it."""
    payload = validated(AlertmanagerNotification, body)
    return relayed(AlertmanagerEvents(payload), len(body))


class AlertmanagerEvents:
    """Makes the events of one notification's alerts; Grafana's (`grafana.py`) adds its own
    links and values."""

    tool = "alertmanager"
    tool_name = "Alertmanager"

    def __init__(self, payload: AlertmanagerNotification) -> None:
        self.payload = payload

    def event(self, position: int) -> ErrorEvent:
        alert = self.payload.alerts[position]
        return alert_event(
            identity_of(self.tool, alert),
            self.tool_name,
            alert,
            self.links(alert, alert.status == "firing"),
            self.details(alert),
            self.payload.common_labels,
        )

    def links(self, alert: AlertmanagerAlert, firing: bool) -> Links:
        return _links(self.payload.external_url, alert, firing)

    def details(self, alert: AlertmanagerAlert) -> Pairs:
        return ()


def relayed(events: AlertmanagerEvents, size: int) -> Notification:
    """The notification's alerts, each known by its fingerprint and carded when its state changes."""
    tool, alerts = events.tool, events.payload.alerts
    return Notification(
        tuple(
            [
                RelayedAlert(
                    identity_of(tool, alert),
                    f"{alert.status} {epoch(alert.starts_at) or 0.0:.3f}",
                    alert.status == "firing",
                    events,
                    position,
                )
                for position, alert in enumerate(alerts)
            ]
        ),
        events.payload.truncated_alerts,
        size,
    )


def identity_of(tool: str, alert: AlertmanagerAlert) -> str:
    """`alertmanager 1a30ba71cca2921f`: the tool's fingerprint of the alert, or a hash of its labels."""
    fingerprint = alert.fingerprint
    if not _FINGERPRINT.fullmatch(fingerprint):
        fingerprint = labels_hash(alert.labels)
    return f"{tool} {fingerprint.lower()}"


def _links(external_url: str, alert: AlertmanagerAlert, firing: bool) -> Links:
    silence = silence_url(external_url, alert.labels) if firing else None
    return links(("Source", alert.generator_url), ("Silence", silence), ("Runbook", runbook_of(alert)))


def silence_url(external_url: str, labels: Labels) -> str | None:
    """Alertmanager's page for a new silence of exactly this alert; of its alertname when too long."""
    if not external_url:
        return None
    base = f"{external_url.rstrip('/')}/#/silences/new?filter="
    url = base + quote(_matchers(labels), safe="")
    if len(url) > LINK_CHARACTERS and "alertname" in labels:
        url = base + quote(_matchers({"alertname": labels["alertname"]}), safe="")
    return url


def _matchers(labels: Labels) -> str:
    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ", ".join(f'{name}="{escaped(value)}"' for name, value in sorted(labels.items())) + "}"


def runbook_of(alert: AlertmanagerAlert) -> str | None:
    return next((alert.annotations[name] for name in RUNBOOK_ANNOTATIONS if name in alert.annotations), None)


def subject_of(labels: Labels, common_labels: Labels) -> str:
    """`HighRequestLatency (instance=app-1:8000)`: the alert's name, and the labels that tell it
    apart from the rest of its group (those not common to the group), a few of them."""
    distinct = [
        f"{cut(name, NAME_CHARACTERS)}={cut(value, NAME_CHARACTERS)}"
        for name, value in labels.items()
        if name != "alertname" and not name.startswith("__") and common_labels.get(name) != value
    ]
    name = labels.get("alertname") or "alert"
    if len(distinct) > DISTINCT_LABELS_SHOWN:
        distinct[DISTINCT_LABELS_SHOWN:] = ["…"]
    if distinct:
        name += f" ({', '.join(distinct)})"
    return cut(name, SUBJECT_CHARACTERS)


def _episode(starts_at: datetime | None) -> str:
    """When the alert started firing, as its fingerprint names the episode: `since 2026-01-01T08:32:27Z`."""
    if starts_at is None:
        return ""
    if starts_at.tzinfo is not None:
        starts_at = starts_at.astimezone(timezone.utc)
    return f"since {starts_at:%Y-%m-%dT%H:%M:%SZ}"


def alert_event(
    identity: str,
    tool_name: str,
    alert: AlertmanagerAlert,
    buttons: Links,
    details: Pairs,
    common_labels: Labels,
) -> ErrorEvent:
    firing = alert.status == "firing"
    annotations = alert.annotations
    name = subject_of(alert.labels, common_labels)
    message = "\n\n".join(annotations[key] for key in MESSAGE_ANNOTATIONS if annotations.get(key))
    other_annotations = [
        (key, value)
        for key, value in annotations.items()
        if key not in MESSAGE_ANNOTATIONS and key not in RUNBOOK_ANNOTATIONS
    ]
    started, ended = epoch(alert.starts_at), epoch(alert.ends_at)
    fired_for = None
    if not firing and started is not None and ended is not None:
        fired_for = duration(ended - started)
    return ErrorEvent(
        timestamp=now_or(started if firing else ended),
        source=RELAY,
        level=level_of(alert.labels) if firing else "resolved",
        subject=name if firing else f"{name} resolved{f' after {fired_for}' if fired_for else ''}",
        message=cut(message, MESSAGE_CHARACTERS) or None,
        logger_name=tool_name,
        # Labels whose names start with __ are the tool's own bookkeeping.
        labels=pairs((key, value) for key, value in alert.labels.items() if not key.startswith("__")),
        details=pairs([*other_annotations, *details, *((("Fired for", fired_for),) if fired_for else ())]),
        links=buttons,
        fingerprint=relay_fingerprint(identity, resolved=not firing, episode=_episode(alert.starts_at)),
    )

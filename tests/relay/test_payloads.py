"""Each tool's payload, as its documentation gives it, becomes the alerts the cards are made of."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import pytest

from lark_alert_middleware._card.spoken import duration
from lark_alert_middleware._sources.relay import alertmanager, generic, grafana, seq
from lark_alert_middleware._sources.relay.alerts import group_line, level_of
from lark_alert_middleware._sources.relay.auth import TokenCheck
from lark_alert_middleware._sources.relay.logs import SecretMask
from lark_alert_middleware._sources.relay.payload import PayloadError
from lark_alert_middleware._sources.relay.recent import RECENT_PAYLOADS, RecentPayloads

from .conftest import ENDS_AT, GRAFANA_SECRET, TOKEN, alertmanager_group, payload


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_each_alert_of_an_alertmanager_notification_is_known_by_its_fingerprint() -> None:
    notification = alertmanager.notification_of(body(payload("alertmanager")))
    assert [alert.identity for alert in notification.alerts] == [
        "alertmanager 1a30ba71cca2921f",
        "alertmanager 6b1e0f3ad4c8e2a7",
        "alertmanager c0d9e8f7a6b54321",
    ]
    assert all(alert.firing for alert in notification.alerts)
    assert len({alert.state for alert in notification.alerts}) == 3  # each started at its own time


def test_an_alertmanager_alert_reads_as_its_card_shows_it() -> None:
    event = alertmanager.notification_of(body(payload("alertmanager"))).alerts[0].make_event()
    assert event.source == "relay" and event.logger_name == "Alertmanager"
    assert event.subject == "HighRequestLatency (instance=app-1:8000)"
    assert event.level == "critical"  # severity=page
    assert event.message is not None and event.message.startswith("High request latency\n\napp-1:8000 has")
    assert ("instance", "app-1:8000") in event.labels
    assert event.fingerprint == "RELAY alertmanager 1a30ba71cca2921f since 2026-01-01T07:52:26Z"
    links = dict(event.links)
    assert links["Silence"] == (
        "http://alertmanager.example.com:9093/#/silences/new?filter="
        "%7Balertname%3D%22HighRequestLatency%22%2C%20instance%3D%22app-1%3A8000%22%2C%20"
        "job%3D%22myjob%22%2C%20severity%3D%22page%22%7D"
    )
    assert links["Runbook"] == "https://runbooks.example.com/high-request-latency"
    assert event.timestamp == pytest.approx(1767253946.739266)  # startsAt, to the microsecond


def test_a_resolved_alert_is_green_says_how_long_it_fired_and_offers_no_silence() -> None:
    document = alertmanager_group("DiskFull", ("resolved",))
    [alert] = alertmanager.notification_of(body(document)).alerts
    event = alert.make_event()
    assert not alert.firing and alert.state.startswith("resolved ")
    assert event.level == "resolved"
    assert event.subject == "DiskFull resolved after 1 h 23 min"
    assert ("Fired for", "1 h 23 min") in event.details
    assert "Silence" not in dict(event.links)
    assert event.fingerprint is not None and event.fingerprint.endswith(" resolved")


def test_an_alert_without_a_usable_fingerprint_is_known_by_its_labels() -> None:
    document = alertmanager_group("NoFingerprint", ("firing", "firing"))
    document["alerts"][0]["fingerprint"] = ""
    document["alerts"][1]["fingerprint"] = "not hex, and long" * 10
    first, second = alertmanager.notification_of(body(document)).alerts
    assert first.identity != second.identity  # their labels differ
    again = alertmanager.notification_of(body(document)).alerts[0]
    assert first.identity == again.identity


def test_a_firing_alert_starting_again_is_a_new_state() -> None:
    document = alertmanager_group("Flapping", ("firing",))
    before = alertmanager.notification_of(body(document)).alerts[0].state
    document["alerts"][0]["startsAt"] = ENDS_AT
    assert alertmanager.notification_of(body(document)).alerts[0].state != before


def test_the_number_of_alerts_alertmanager_left_out_is_kept() -> None:
    document = alertmanager_group("Truncated", ("firing",))
    document["truncatedAlerts"] = 12
    assert alertmanager.notification_of(body(document)).left_out == 12
    assert group_line(3, 12) == "and 3 still firing; 12 more the sender left out (max_alerts)"


WRONG_SHAPES = {
    "alerts: Field required": lambda d: d.pop("alerts"),
    "alerts: Input should be a valid array": lambda d: d.update(alerts={}),
    "alerts[0].status: Input should be 'firing' or 'resolved'": lambda d: d["alerts"][0].update(status="?"),
    "alerts[1].labels.team: Input should be a valid string": lambda d: d["alerts"][1]["labels"].update(
        team=[]
    ),
    "alerts[2].startsAt: Input should be a valid datetime": lambda d: d["alerts"][2].update(startsAt="now"),
    "truncatedAlerts: Input should be greater than or equal to 0": lambda d: d.update(truncatedAlerts=-1),
}


@pytest.mark.parametrize(("message", "change"), WRONG_SHAPES.items())
def test_a_payload_of_the_wrong_shape_is_refused_naming_the_field(message: str, change: Any) -> None:
    document = payload("alertmanager")
    change(document)
    with pytest.raises(PayloadError) as refused:
        alertmanager.notification_of(body(document))
    assert str(refused.value).startswith(message)


def test_broken_json_is_refused_as_such() -> None:
    with pytest.raises(PayloadError, match=r"^body: Invalid JSON"):
        alertmanager.notification_of(b'{"alerts": [{"status": "firing"')
    with pytest.raises(PayloadError, match=r"^body: Invalid JSON"):
        alertmanager.notification_of(b"\xff\xfe not utf-8")


def test_a_refusal_names_a_few_problems_and_counts_the_rest() -> None:
    document = {"alerts": [{"status": "?"} for _ in range(20)]}
    with pytest.raises(PayloadError) as refused:
        alertmanager.notification_of(body(document))
    assert str(refused.value).endswith("; and 15 more")


def test_grafanas_documented_example_gives_its_links_and_values() -> None:
    first, _ = grafana.notification_of(body(payload("grafana"))).alerts
    assert first.identity == "grafana c6eadffa33fcdf37"
    event = first.make_event()
    assert event.logger_name == "Grafana"
    assert event.subject == "High memory usage (zone=us-1)"
    assert event.level == "error"  # no severity label
    assert ("Values", "B=44.2394, C=1") in event.details
    assert [label for label, _ in event.links] == ["Silence", "Runbook", "Alert rule"]  # empty URLs left out


def test_grafanas_older_value_string_is_shown() -> None:
    document = payload("grafana")
    del document["alerts"][0]["values"]
    document["alerts"][0]["valueString"] = "[ metric='' labels={} value=14151.331895396988 ]"
    event = grafana.notification_of(body(document)).alerts[0].make_event()
    assert ("Value", "[ metric='' labels={} value=14151.331895396988 ]") in event.details


def signed(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()


def test_grafanas_signature_is_the_hex_hmac_of_the_body_or_of_timestamp_colon_body() -> None:
    secret, content = GRAFANA_SECRET.encode(), body(payload("grafana"))
    assert grafana.signature_is_valid(secret, content, signed(GRAFANA_SECRET, content), None)
    assert grafana.signature_is_valid(
        secret, content, signed(GRAFANA_SECRET, b"1767225600:" + content), b"1767225600", now=1767225700
    )
    assert not grafana.signature_is_valid(secret, content + b" ", signed(GRAFANA_SECRET, content), None)
    assert not grafana.signature_is_valid(secret, content, None, None)
    assert not grafana.signature_is_valid(secret, content, signed("another-secret-of-16", content), None)


def test_a_signed_timestamp_far_from_now_is_refused() -> None:
    secret, content = GRAFANA_SECRET.encode(), b"{}"
    old = signed(GRAFANA_SECRET, b"1767225600:" + content)
    assert not grafana.signature_is_valid(secret, content, old, b"1767225600", now=1767225600 + 301)
    assert not grafana.signature_is_valid(secret, content, old, b"soon", now=1767225600)


def test_a_seq_event_groups_by_level_and_template_and_shows_its_exception() -> None:
    [alert] = seq.notification_of(body(payload("seq")), "https://seq.example.com/#/events").alerts
    assert alert.identity is None  # a log event: deduplicated by the pipeline's window only
    event = alert.make_event()
    assert event.fingerprint == "RELAY seq Error Something failed while processing order {OrderId}"
    assert event.subject == "Something failed while processing order 42"
    assert event.level == "error"
    assert event.request_id == "0HMVFE0A3GJ4P:00000001"
    assert event.exception_text is not None
    assert event.exception_text.type_name == "System.DivideByZeroException"
    assert event.exception_text.message == "Attempted to divide by zero."
    assert ("OrderId", "42") in event.details
    assert ("User", '{"Name": "nblumhardt", "Id": 101}') in event.details
    assert dict(event.links) == {
        "View in Seq": "https://seq.example.com/#/events?filter=%40EventType%20%3D%200xAB7297FA"
    }


@pytest.mark.parametrize(
    ("level", "expected"),
    [("Fatal", "critical"), ("Warning", "warning"), ("Debug", "info"), ("Odd", "error")],
)
def test_seq_levels_give_the_cards_level(level: str, expected: str) -> None:
    document = {"@mt": "x", "@l": level}
    assert seq.notification_of(body(document)).alerts[0].make_event().level == expected
    assert seq.notification_of(body({"@mt": "x"})).alerts[0].make_event().level == "info"  # no @l


def test_a_seq_event_needs_a_message_or_a_template() -> None:
    with pytest.raises(PayloadError, match=r"^@mt: a Seq event needs @mt or @m"):
        seq.notification_of(body({"@t": "2016-10-12T04:46:58.0904378Z"}))


def test_a_generic_alert_is_deduplicated_by_its_fingerprint_or_its_title_and_labels() -> None:
    event = generic.notification_of(body(payload("generic"))).alerts[0].make_event()
    assert event.fingerprint == "RELAY generic backup-db1"
    assert event.level == "critical" and event.logger_name == "webhook"
    assert dict(event.links) == {"Open": "https://ci.example.com/jobs/backup/1234"}
    untitled = {"title": "Disk full", "labels": {"host": "db1"}}
    first = generic.notification_of(body(untitled)).alerts[0].make_event()
    other_host = generic.notification_of(body({**untitled, "labels": {"host": "db2"}})).alerts[0].make_event()
    assert first.fingerprint != other_host.fingerprint
    resolved = generic.notification_of(body({"title": "Disk full", "severity": "resolved"})).alerts[0]
    assert resolved.make_event().level == "resolved"


def test_a_generic_alert_needs_a_title() -> None:
    with pytest.raises(PayloadError, match=r"^title: Field required"):
        generic.notification_of(body({"text": "no title"}))


def test_links_that_are_not_http_or_too_long_to_be_whole_are_left_out() -> None:
    document = payload("generic")
    for url in ("javascript:alert(1)", "https://example.com/" + "x" * 3000):
        assert generic.notification_of(body({**document, "url": url})).alerts[0].make_event().links == ()


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        ("critical", "critical"),
        ("PAGE", "critical"),
        ("error", "error"),
        ("warning", "warning"),
        ("info", "info"),
        ("none", "info"),
        ("whatever", "error"),
    ],
)
def test_the_severity_label_gives_the_level(severity: str, level: str) -> None:
    assert level_of({"severity": severity}) == level
    assert level_of({}) == "error"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3600, "1 h"),
        (4980, "1 h 23 min"),
        (86400, "1 day"),
        (97200, "1 day 3 h"),
        (-5, "1 s"),
    ],
)
def test_how_long_an_alert_fired_reads_as_a_person_says_it(seconds: int, text: str) -> None:
    assert duration(seconds) == text


def test_the_token_is_taken_as_a_bearer_token_or_a_query_parameter_and_nothing_else() -> None:
    check = TokenCheck(TOKEN)
    assert check.allows(f"Bearer {TOKEN}".encode(), b"")
    assert check.allows(f"bearer  {TOKEN} ".encode(), b"")
    assert check.allows(None, f"a=1&token={TOKEN}".encode())
    assert not check.allows(None, b"")
    assert not check.allows(f"Basic {TOKEN}".encode(), b"")
    assert not check.allows(f"Bearer {TOKEN[:-1]}".encode(), b"")
    assert not check.allows(b"Bearer ", f"tokens={TOKEN}".encode())
    assert not check.allows(None, b"&".join([b"x=1"] * 100) + f"&token={TOKEN}".encode())


def test_the_log_mask_hides_token_values_and_secrets_and_keeps_uvicorns_arguments() -> None:
    mask = SecretMask()
    mask.add(TOKEN)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/seq?TOKEN={TOKEN}&x=1", "1.1", 202),
        None,
    )
    assert mask.filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "POST /seq?TOKEN=***&x=1 HTTP/1.1" 202'
    other = logging.LogRecord("x", logging.INFO, __file__, 1, f"sent {TOKEN} in a path", None, None)
    mask.filter(other)
    assert TOKEN not in other.getMessage()


def test_a_seq_exception_that_is_not_text_is_shown_as_json() -> None:
    document = {"@mt": "x", "@x": {"Message": "boom", "Type": "System.Exception"}}
    event = seq.notification_of(body(document)).alerts[0].make_event()
    assert event.exception_text is not None
    assert event.exception_text.traceback == '{"Message": "boom", "Type": "System.Exception"}'


def test_a_body_seen_lately_is_parsed_once_and_a_broken_one_every_time() -> None:
    parsed: list[bytes] = []

    def parse(content: bytes) -> Any:
        parsed.append(content)
        return alertmanager.notification_of(content)

    recent = RecentPayloads(parse)
    group = body(payload("alertmanager"))
    assert recent(group) is recent(group)
    for _ in range(2):
        with pytest.raises(PayloadError):
            recent(b"{")
    assert parsed == [group, b"{", b"{"]


def test_only_the_latest_bodies_are_remembered() -> None:
    parsed: list[bytes] = []

    def parse(content: bytes) -> Any:
        parsed.append(content)
        return generic.notification_of(content)

    recent = RecentPayloads(parse)
    bodies = [body({"title": f"alert {number}"}) for number in range(RECENT_PAYLOADS + 1)]
    for content in bodies:
        recent(content)
    recent(bodies[-1])
    recent(bodies[0])  # the oldest was forgotten
    assert len(parsed) == len(bodies) + 1

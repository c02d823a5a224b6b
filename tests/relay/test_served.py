"""The relay through a real uvicorn, against the Lark-compatible receiver and real Redis.

One relay serves the whole module; each test posts alerts of its own (named after the test),
so that what one test's alerts did is never counted by another.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware.testing import LarkReceiver

from ..conftest import shown_text, wait_until
from .conftest import (
    TOKEN,
    ServedRelay,
    alertmanager_group,
    cards_about,
    payload,
    unique,
)

pytestmark = pytest.mark.integration


def test_a_firing_group_becomes_one_card_per_alert(served_relay: ServedRelay) -> None:
    name = unique("Firing")
    answer = served_relay.post("/alertmanager", alertmanager_group(name))
    assert (answer.status_code, answer.json()) == (202, {"accepted": 3})
    cards = _wait_for(served_relay.lark, name, 3)
    assert sorted(card["header"]["title"]["content"] for card in cards) == [
        f"🔴 🆕 {name} (instance=app-{index}:8000) · relay · production" for index in (1, 2, 3)
    ]
    card = next(card for card in cards if "app-1:8000" in card["header"]["title"]["content"])
    assert card["header"]["template"] == "red"
    text = shown_text(card)
    assert "relayed alert · Alertmanager" in text
    assert text.index("High request latency") < text.index("**instance**")  # the summary first
    buttons = {button["text"]["content"]: button["url"] for button in _buttons(card)}
    assert buttons["Silence"].startswith("http://alertmanager.example.com:9093/#/silences/new?filter=")
    assert buttons["Runbook"] == "https://runbooks.example.com/high-request-latency"
    assert buttons["Source"].startswith("http://prometheus.example.com:9090/graph?")


def test_a_group_resent_ten_times_makes_no_new_card(served_relay: ServedRelay) -> None:
    name = unique("Resent")
    group = alertmanager_group(name)
    for _ in range(11):
        assert served_relay.post("/alertmanager", group).status_code == 202
    # The cards come in on up to four connections: the sentinel may overtake one of them.
    _wait_for(served_relay.lark, name, 3)
    served_relay.sentinel("Resent")
    assert len(cards_about(served_relay.lark, name)) == 3


def test_one_of_three_alerts_resolving_makes_one_green_card_for_it_alone(served_relay: ServedRelay) -> None:
    name = unique("Resolving")
    assert served_relay.post("/alertmanager", alertmanager_group(name)).status_code == 202
    _wait_for(served_relay.lark, name, 3)
    resolving = alertmanager_group(name, ("firing", "resolved", "firing"))
    assert served_relay.post("/alertmanager", resolving).status_code == 202
    _wait_for(served_relay.lark, name, 4)
    served_relay.sentinel("Resolving")
    cards = cards_about(served_relay.lark, name)
    assert len(cards) == 4
    green = cards[-1]
    assert green["header"]["template"] == "green"
    assert green["header"]["title"]["content"] == (
        f"🟢 {name} (instance=app-2:8000) resolved after 1 h 23 min · relay · production"
    )
    text = shown_text(green)
    assert "**In this group**\nand 2 still firing" in text
    assert "Silence" not in text


def test_an_alert_that_fires_again_after_resolving_gets_its_card_inside_the_window(
    served_relay: ServedRelay,
) -> None:
    name = unique("Flapping")
    assert served_relay.post("/alertmanager", alertmanager_group(name, ("firing",))).status_code == 202
    _wait_for(served_relay.lark, name, 1)
    assert served_relay.post("/alertmanager", alertmanager_group(name, ("resolved",))).status_code == 202
    _wait_for(served_relay.lark, name, 2)
    again = alertmanager_group(name, ("firing",))
    again["alerts"][0]["startsAt"] = "2026-01-01T09:00:00Z"  # a new episode, inside the 60 s window
    for _ in range(3):  # and re-sent, as Alertmanager does
        assert served_relay.post("/alertmanager", again).status_code == 202
    _wait_for(served_relay.lark, name, 3)
    served_relay.sentinel("Flapping")
    cards = cards_about(served_relay.lark, name)
    assert [card["header"]["template"] for card in cards] == ["red", "green", "red"]


def test_a_missing_or_wrong_token_is_401_and_makes_no_card(served_relay: ServedRelay) -> None:
    name = unique("Unauthorised")
    group = alertmanager_group(name)
    answers = [
        served_relay.post("/alertmanager", group, authorised=False),
        served_relay.post("/alertmanager", group, headers={"Authorization": f"Bearer {TOKEN}x"}),
        served_relay.post("/alertmanager", group, headers={"Authorization": f"Basic {TOKEN}"}),
        served_relay.post("/alertmanager?token=wrong-token-of-the-right-size!!", group, authorised=False),
    ]
    assert [answer.status_code for answer in answers] == [401] * 4
    assert answers[0].headers["www-authenticate"].startswith("Bearer")
    served_relay.sentinel("Unauthorised")
    assert cards_about(served_relay.lark, name) == []


def test_the_token_in_the_query_is_accepted_and_never_logged(served_relay: ServedRelay) -> None:
    name = unique("QueryToken")
    answer = served_relay.post(
        f"/alertmanager?token={TOKEN}", alertmanager_group(name, ("firing",)), authorised=False
    )
    assert answer.status_code == 202
    _wait_for(served_relay.lark, name, 1)
    log = served_relay.server.output()
    assert "POST /alertmanager?token=*** HTTP/1.1" in log
    assert TOKEN not in log


def test_a_body_over_one_mebibyte_is_413(served_relay: ServedRelay) -> None:
    answer = served_relay.post("/alertmanager", content=b" " * (2 * 1024 * 1024))
    assert answer.status_code == 413


def test_broken_json_is_400_and_a_wrong_shape_names_the_field(served_relay: ServedRelay) -> None:
    broken = served_relay.post("/alertmanager", content=b'{"alerts": [')
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("body: Invalid JSON")
    document = alertmanager_group(unique("Shape"))
    document["alerts"][1]["labels"]["severity"] = 3
    wrong = served_relay.post("/alertmanager", document)
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"error": "alerts[1].labels.severity: Input should be a valid string"},
    )


HOSTILE_VALUES = {
    "mention": '<at id=all></at> <at user_id="ou_1">boss</at>',
    "markup": "**bold** [click](https://evil.example/phish) ![img](img_v2_abc) <font color='red'>x</font>",
    "jinja": "{{ 7 * 7 }} {% raw %}{{ secrets }}{% endraw %} {# c #}",
    "huge": "A" * 100_000,
}


def test_hostile_label_values_make_safe_cards_within_20_kib(served_relay: ServedRelay) -> None:
    name = unique("Hostile")
    document = alertmanager_group(name, ("firing",))
    alert = document["alerts"][0]
    alert["labels"].update(HOSTILE_VALUES)
    alert["annotations"] = {"summary": HOSTILE_VALUES["mention"], "description": HOSTILE_VALUES["huge"]}
    assert served_relay.post("/alertmanager", document).status_code == 202
    [card] = _wait_for(served_relay.lark, name, 1)
    request = next(request for request in served_relay.lark.requests if name in request.body.decode())
    assert request.accepted and len(request.body) <= 20 * 1024
    markdown = markdown_text(card)
    assert count_mentions(markdown) == 0  # the title is plain_text: shown as is, pinging nobody
    for dangerous in ("<at", "](https://evil", "![img]", "<font"):
        assert dangerous not in markdown
    text = shown_text(card)
    assert "<at id=all></at>" in text  # shown as text
    assert "{{ 7 * 7 }}" in text  # not evaluated
    assert "A" * 1000 not in text


def test_grafana_notifications_become_cards_with_their_links(served_relay: ServedRelay) -> None:
    document = payload("grafana")
    name = unique("Grafana")
    for alert in document["alerts"]:
        alert["labels"]["alertname"] = f"{name} {alert['labels']['alertname']}"
        alert["fingerprint"] = ""  # known by its labels, then
    assert served_relay.post("/grafana", document).status_code == 202
    cards = _wait_for(served_relay.lark, name, 2)
    card = next(card for card in cards if "memory" in card["header"]["title"]["content"])
    assert (
        card["header"]["title"]["content"]
        == f"🔴 🆕 {name} High memory usage (zone=us-1) · relay · production"
    )
    text = shown_text(card)
    assert "relayed alert · Grafana" in text and "B=44.2394, C=1" in text
    labels = {button["text"]["content"] for button in _buttons(card)}
    assert labels == {"Silence", "Runbook", "Alert rule"}


def test_a_seq_event_becomes_a_card_linking_to_its_events_in_seq(served_relay: ServedRelay) -> None:
    document = payload("seq")
    marker = unique("seq")
    document["@mt"] += f" ({marker})"
    document["@m"] += f" ({marker})"
    assert served_relay.post("/seq", document).status_code == 202
    [card] = _wait_for(served_relay.lark, marker, 1)
    text = shown_text(card)
    assert card["header"]["template"] == "red"
    assert "DivideByZeroException" in text and "Attempted to divide by zero." in text
    buttons = {button["text"]["content"]: button["url"] for button in _buttons(card)}
    assert (
        buttons["View in Seq"] == "https://seq.example.com/#/events?filter=%40EventType%20%3D%200xAB7297FA"
    )  # @i 2876413946
    assert (
        buttons["View logs"]
        == "https://seq.example.com/#/events?filter=RequestId%3D%270HMVFE0A3GJ4P%3A00000001%27"
    )


def test_a_generic_alert_becomes_a_card(served_relay: ServedRelay) -> None:
    document = payload("generic")
    document["title"] = unique("Backup failed ")
    assert served_relay.post("/generic", document).status_code == 202
    [card] = _wait_for(served_relay.lark, document["title"], 1)
    assert card["header"]["template"] == "red"
    assert "pg_dump exited with status 1" in shown_text(card)


def test_healthz_names_the_webhook_and_redis_but_never_the_token(served_relay: ServedRelay) -> None:
    answer = httpx.get(served_relay.url + "/healthz", timeout=10)
    assert answer.status_code == 200
    health = answer.json()
    assert health["status"] == "ok" and health["redis_reachable"] is True
    assert health["webhook"].endswith("/open-apis/bot/v2/hook/***")
    assert health["redis"] == "redis://127.0.0.1:6379/0"
    assert TOKEN not in answer.text and served_relay.lark.token not in answer.text


def test_two_relay_workers_sharing_redis_send_one_card_per_alert(two_relays: list[ServedRelay]) -> None:
    name = unique("TwoWorkers")
    group = json.dumps(alertmanager_group(name)).encode()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def post_to_both() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(relay.url + "/alertmanager", content=group, headers=headers)
                    for relay in two_relays * 10
                )
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(post_to_both()) == [202] * 20
    outputs = [relay.server.terminate() for relay in two_relays]  # each posts what it has, then exits
    assert len(cards_about(two_relays[0].lark, name)) == 3, outputs


def _wait_for(lark: LarkReceiver, containing: str, count: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(cards_about(lark, containing)) >= count, timeout=20, what=f"{count} cards")
    return cards_about(lark, containing)


def _buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    actions = [element for element in card["elements"] if element.get("tag") == "action"]
    return [button for action in actions for button in action["actions"]]

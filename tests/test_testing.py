"""The Lark-compatible receiver answers like Lark: the project's tests are only as good as it is."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from lark_alert_middleware._lark.webhook import message_body
from lark_alert_middleware.testing import LarkReceiver

from .conftest import free_port

CARD = '{"elements":[{"tag":"markdown","content":"hello"}]}'


def post(url: str, body: bytes, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=timeout)


def test_accepts_an_unsigned_card_and_records_it(lark_receiver: LarkReceiver) -> None:
    response = post(lark_receiver.url, message_body(CARD, None, int(time.time())))
    assert response.status_code == 200
    assert response.json()["code"] == 0 and response.json()["StatusCode"] == 0
    assert lark_receiver.cards == [json.loads(CARD)]


def test_unknown_token_is_refused_with_19001(lark_receiver: LarkReceiver) -> None:
    response = post(lark_receiver.url.replace("test-token", "other"), message_body(CARD, None, 0))
    assert response.json()["code"] == 19001
    assert lark_receiver.cards == []


def test_bodies_over_20_kib_are_refused_with_19036(lark_receiver: LarkReceiver) -> None:
    big = json.dumps({"elements": [{"tag": "markdown", "content": "x" * 21_000}]})
    assert post(lark_receiver.url, message_body(big, None, 0)).json()["code"] == 19036


def test_malformed_json_is_a_400_bad_request(lark_receiver: LarkReceiver) -> None:
    response = post(lark_receiver.url, b"{not json")
    assert (response.status_code, response.json()["code"]) == (400, 9499)


def test_signature_and_timestamp_window_are_checked(make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(secret="s3cret")  # type: ignore[operator]
    now = int(time.time())
    assert post(lark.url, message_body(CARD, "s3cret", now)).json()["code"] == 0
    assert post(lark.url, message_body(CARD, "wrong", now)).json()["code"] == 19021
    assert post(lark.url, message_body(CARD, "s3cret", now - 3700)).json()["code"] == 19021
    assert post(lark.url, message_body(CARD, None, now)).json()["code"] == 19021


def test_keyword_is_required_when_configured(make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(keyword="ALERT")  # type: ignore[operator]
    assert post(lark.url, message_body(CARD, None, 0)).json()["code"] == 19024
    with_keyword = '{"elements":[{"tag":"markdown","content":"ALERT: hello"}]}'
    assert post(lark.url, message_body(with_keyword, None, 0)).json()["code"] == 0


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_more_than_five_a_second_is_frequency_limited(make_lark_receiver: object) -> None:
    clock = ManualClock(1000.0)
    lark: LarkReceiver = make_lark_receiver(clock=clock)  # type: ignore[operator]
    codes = []
    for _ in range(7):
        codes.append(post(lark.url, message_body(CARD, None, 0)).json()["code"])
        clock.now += 0.01
    assert codes == [0, 0, 0, 0, 0, 11232, 11232]
    clock.now += 1.0
    assert post(lark.url, message_body(CARD, None, 0)).json()["code"] == 0


def test_more_than_a_hundred_a_minute_is_frequency_limited(make_lark_receiver: object) -> None:
    clock = ManualClock(1000.0)
    lark: LarkReceiver = make_lark_receiver(clock=clock)  # type: ignore[operator]
    codes = []
    for _ in range(102):
        codes.append(post(lark.url, message_body(CARD, None, 0)).json()["code"])
        clock.now += 0.5  # 2 a second: under 5/s
    assert codes.count(0) == 100
    assert codes[100:] == [11232, 11232]


def test_scripted_faults_come_first_then_normal_answers(lark_receiver: LarkReceiver) -> None:
    lark_receiver.fail_next("http_500", "http_429", "frequency_limited", "drop")
    body = message_body(CARD, None, 0)
    assert post(lark_receiver.url, body).status_code == 500
    too_many = post(lark_receiver.url, body)
    assert (too_many.status_code, too_many.headers["retry-after"]) == (429, "1")
    assert post(lark_receiver.url, body).json()["code"] == 11232
    with pytest.raises(httpx.RemoteProtocolError):
        post(lark_receiver.url, body)
    assert post(lark_receiver.url, body).json()["code"] == 0
    assert [r.http_status for r in lark_receiver.requests] == [500, 429, 200, None, 200]


def test_a_hang_holds_the_request_until_the_client_gives_up(make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(hang_seconds=5)  # type: ignore[operator]
    lark.fail_next("hang")
    with pytest.raises(httpx.ReadTimeout):
        post(lark.url, message_body(CARD, None, 0), timeout=0.3)


def test_wait_for_cards_fails_with_what_was_received(lark_receiver: LarkReceiver) -> None:
    post(lark_receiver.url, b"{broken")
    with pytest.raises(
        AssertionError, match=r"expected 1 accepted cards within 0.2s; got answers \[\(400, 9499\)\]"
    ):
        lark_receiver.wait_for_cards(1, timeout=0.2)


def test_a_fixed_port_and_token_make_a_predictable_url() -> None:
    port = free_port()
    with LarkReceiver(port=port, token="demo") as receiver:
        assert receiver.url == f"http://127.0.0.1:{port}/open-apis/bot/v2/hook/demo"
        assert post(receiver.url, message_body(CARD, None, 0)).json()["code"] == 0


def test_held_requests_are_answered_once_released(lark_receiver: LarkReceiver) -> None:
    lark_receiver.hold()
    answers: list[int] = []
    poster = threading.Thread(
        target=lambda: answers.append(
            post(lark_receiver.url, message_body(CARD, None, int(time.time()))).status_code
        )
    )
    poster.start()
    lark_receiver.wait_for_in_flight(1)
    assert answers == [] and lark_receiver.requests == []
    lark_receiver.release()
    poster.join(10)
    assert answers == [200] and len(lark_receiver.cards) == 1

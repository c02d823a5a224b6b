"""Property tests: redaction takes time linear in its input, whatever the input, at the largest body allowed.

A backtracking pattern is slowest on long runs of the characters it repeats over and on many
starts of a match that fails late. The generators below build 1 MiB texts from runs and repeats
of exactly those, interleaved. Linear redaction of 1 MiB takes about 0.5 s here at worst
(`benchmarks/redaction.py`); a quadratic pattern takes minutes. The wall-clock bounds are ten
times and more what linear code needs on this 2-core machine, so they fail only on the second.
"""

from __future__ import annotations

import gzip
import json
import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lark_alert_middleware._card.excerpt import excerpt_body
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._records import CapturedBody

MAX_BODY_BYTES = 1024 * 1024  # the largest LARK_ALERT_MAX_BODY_BYTES allowed
TEXT_SECONDS = 6.0  # Redactor.text of 1 MiB, all at once: about 0.5 s at worst
EXCERPT_SECONDS = 2.0  # excerpt_body of 1 MiB, which redacts a window: about 0.01 s

# Runs of one character class, and the start of every pattern the redactor has.
UNITS = [
    *("a", "Z", "1", "aZ09+/", " ", "\t", "\n", '"', "'", "=", ":", ".", "-", "_", "/", "@", "\\", "(", "<"),
    *("eyJ", "eyJa.", "a://", "a://u:", "https://a@", "-----BEGIN ", "-----END ", "PRIVATE KEY-----"),
    *("bearer ", "token ", "token a", '"k":', "k=", "k: ", "'k': '", "k = ", "<a>", "<a ", "('k', '"),
    *("4 ", "4-", "AKIA", "ghp_", "github_pat_", "xoxb-", "sk_live_", "rk_test_", "password=", "password: "),
    *('password="', "?code=", "hooks.slack.com/services/", "open.feishu.cn/open-apis/bot/v2/hook/"),
    *("discord.com/api/webhooks/1/", "<password>", '\\"k\\": \\"', "b'"),
]


@st.composite
def adversarial_texts(draw: st.DrawFn) -> str:
    """1 MiB of a few units: each repeated a few times, the whole repeated to size; or in long blocks."""
    parts = draw(st.lists(st.tuples(st.sampled_from(UNITS), st.integers(1, 8)), min_size=1, max_size=4))
    if draw(st.booleans()):
        unit = "".join(part * count for part, count in parts)
        return (unit * (MAX_BODY_BYTES // len(unit) + 1))[:MAX_BODY_BYTES]
    block = MAX_BODY_BYTES // len(parts)
    return "".join((part * (block // len(part) + 1))[:block] for part, _ in parts)


def seconds(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - started


def repeated(unit: str) -> str:
    return (unit * (MAX_BODY_BYTES // len(unit) + 1))[:MAX_BODY_BYTES]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(text=adversarial_texts())
@example(text=repeated("eyJ"))
@example(text=repeated("a"))
@example(text=repeated("k="))
def test_redacting_a_megabyte_of_any_text_takes_linear_time(text: str) -> None:
    assert seconds(lambda: Redactor().text(text)) < TEXT_SECONDS


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    text=adversarial_texts(),
    content_type=st.sampled_from(
        [
            "text/plain",
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=a",
        ]
    ),
)
@example(text=repeated("a"), content_type="text/plain")
@example(text=repeated("eyJ"), content_type="application/json")
def test_excerpting_the_largest_body_of_any_text_takes_linear_time(text: str, content_type: str) -> None:
    data = text.encode()
    body = CapturedBody(data, len(data), content_type)
    assert seconds(lambda: excerpt_body(body, Redactor())) < EXCERPT_SECONDS


@st.composite
def adversarial_json(draw: st.DrawFn) -> bytes:
    """1 MiB of JSON: many strings (or keys) of a unit repeated, each as long as drawn."""
    unit = draw(st.sampled_from(UNITS))
    string = (unit * 4096)[: draw(st.integers(1, 4096))]
    count = MAX_BODY_BYTES // (len(json.dumps(string)) + 2)
    if draw(st.booleans()):
        return json.dumps([string] * count).encode()
    return json.dumps({f"{string}{index}": string for index in range(count // 2)}).encode()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=adversarial_json())
def test_excerpting_the_largest_json_body_takes_linear_time(data: bytes) -> None:
    body = CapturedBody(data, len(data), "application/json")
    assert seconds(lambda: excerpt_body(body, Redactor())) < EXCERPT_SECONDS


def test_a_small_gzip_body_inflating_to_a_run_of_letters_is_excerpted_at_once() -> None:
    data = gzip.compress(b"eyJ" * 30_000)  # about a hundred bytes, inflating to the 64 KiB allowed
    body = CapturedBody(data, len(data), "text/plain", "gzip")
    assert seconds(lambda: excerpt_body(body, Redactor())) < EXCERPT_SECONDS

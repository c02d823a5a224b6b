"""What redacting one captured body costs the alerter thread, worst case and typical, in µs per KiB.

    python benchmarks/redaction.py [--size 1048576] [--repeats 3]

A body is at most LARK_ALERT_MAX_BODY_BYTES (1 MiB at most); the alerter decodes, redacts and
excerpts it before the card is rendered, holding the GIL all the while, so every request of the
process waits for it. Each case below is a body of `--size` bytes sent as text/plain: runs of
one character class and repeats of the start of each secret shape the redactor looks for (what
makes a backtracking pattern slow), then typical bodies (a JSON document, a form, log lines).
Each case is measured through `excerpt_body` (what an alert costs) and, for the worst cases,
`Redactor.text` on the whole body at once (what the patterns cost without any window). The
figure is the fastest of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from lark_alert_middleware._card.excerpt import excerpt_body
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._records import CapturedBody

# Repeated to the body's size: what a backtracking pattern spends longest on.
ADVERSARIAL = {
    "letters": "a",
    "digits": "1",
    "base64 characters": "aZ09+/",
    "spaces": " ",
    "quotes": '"',
    "equals signs": "=",
    "colons": ":",
    "eyJ": "eyJ",
    "eyJ with dots": "eyJa.",
    "a://": "a://",
    "a://u:": "a://u:",
    "-----BEGIN ": "-----BEGIN ",
    "bearer ": "bearer ",
    '"k":': '"k":',
    "k=": "k=",
    "k: ": "k: ",
    "4 ": "4 ",
    "AKIA": "AKIA",
    "a.": "a.",
    "a-": "a-",
    "<a>": "<a>",
    "('k', ": "('k', ",
    "ghp_": "ghp_",
    "xoxb-": "xoxb-",
    "sk_live_": "sk_live_",
    "https://a@": "https://a@",
    "hooks.slack.com/services/": "hooks.slack.com/services/",
    "password=": "password=",
    "password: '": "password: '",
}


def typical_json(size: int) -> str:
    item = {"id": 1234, "sku": "AB-1234", "name": "Blue mug", "quantity": 2, "price": "12.50"}
    document = {"order_id": 42, "customer": {"name": "Ann", "email": "ann@example.com"}, "items": []}
    while len(json.dumps(document)) < size:
        document["items"].append(item)
    return json.dumps(document)


def typical_form(size: int) -> str:
    return ("user=ann&email=ann%40example.com&plan=pro&country=NL&" * (size // 53 + 1))[:size]


def typical_log(size: int) -> str:
    line = "2026-01-01T00:00:00Z INFO request id=3f1c2d9e path=/orders/42 status=200 took 12.3 ms\n"
    return (line * (size // len(line) + 1))[:size]


TYPICAL: dict[str, tuple[Callable[[int], str], str]] = {
    "JSON document": (typical_json, "application/json"),
    "form": (typical_form, "application/x-www-form-urlencoded"),
    "log lines": (typical_log, "text/plain"),
}


def fastest(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024 * 1024, help="body size in bytes")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    size, repeats = arguments.size, arguments.repeats
    redactor = Redactor()
    kib = size / 1024

    def excerpt_cost(text: str, content_type: str) -> float:
        data = text.encode()
        body = CapturedBody(data, len(data), content_type)
        return fastest(lambda: excerpt_body(body, redactor), repeats) * 1e6 / kib

    print(f"{size:,}-byte bodies, µs per KiB (fastest of {repeats})")
    print(f"{'case':<30}{'excerpt_body':>14}{'Redactor.text':>15}")
    worst_excerpt, worst_text = ("", 0.0), ("", 0.0)
    for name, unit in ADVERSARIAL.items():
        text = (unit * (size // len(unit) + 1))[:size]
        excerpt = excerpt_cost(text, "text/plain")
        whole = fastest(lambda text=text: redactor.text(text), 1) * 1e6 / kib
        print(f"{name:<30}{excerpt:>14,.1f}{whole:>15,.1f}", flush=True)
        worst_excerpt = max(worst_excerpt, (name, excerpt), key=lambda pair: pair[1])
        worst_text = max(worst_text, (name, whole), key=lambda pair: pair[1])
    for name, (make, content_type) in TYPICAL.items():
        print(f"{'typical: ' + name:<30}{excerpt_cost(make(size), content_type):>14,.1f}", flush=True)
    print(f"worst excerpt_body: {worst_excerpt[1]:,.1f} µs/KiB ({worst_excerpt[0]})")
    print(f"worst Redactor.text: {worst_text[1]:,.1f} µs/KiB ({worst_text[0]})")


if __name__ == "__main__":
    main()

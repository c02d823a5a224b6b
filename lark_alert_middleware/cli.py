"""The command line: `lark-alert check | send-test | preview | relay` (or `python -m lark_alert_middleware`).

Every command reads the same environment variables as the middleware. Exit status: 0 all
good, 1 a problem was found (and said in words), 2 the command was used wrongly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

from ._card.maker import CardMaker
from ._card.render import CARD_BUDGET
from ._config import AlertSettings, ConfigurationError, load_settings, webhook_host_kind
from ._lark.urls import safe_url
from ._lark.webhook import LarkAnswer, LarkWebhook, Outcome, redact_url
from ._pipeline.build import build_pipeline, destination_of, webhook_for
from ._pipeline.fingerprint import default_fingerprint
from ._records import HTTP, SOURCES, ErrorEvent, RenderedCard
from ._sources.event_json import event_from_json
from .preview import ShownCard, page_html

OK, PROBLEM, USAGE = 0, 1, 2
_HOOK_PATH = re.compile(r"^/open-apis/bot/v2/hook/[A-Za-z0-9_-]+$")


class Problem(Exception):
    """Something the user can fix; the message says what and how."""


def _card_maker(settings: AlertSettings, service_note: str = "") -> CardMaker:
    """The card maker the middleware would use, its template checked the way the middleware checks it."""
    cards = build_pipeline(settings).cards
    if service_note:
        cards.name_service(cards.settings.service + service_note)
    cards.check()
    return cards


def _title(card: dict[str, Any]) -> str:
    header = card.get("header")
    title = header.get("title") if isinstance(header, dict) else None
    content = title.get("content") if isinstance(title, dict) else None
    return content if isinstance(content, str) else "(no title)"


def _webhook_line(url: str, allowed_hosts: tuple[str, ...]) -> tuple[str, str | None]:
    """How the webhook URL reads, and a problem with it if Lark would surely refuse it."""
    shown = redact_url(url)
    kind = webhook_host_kind(url, allowed_hosts)
    if kind == "loopback":
        return f"{shown} (loopback: a test receiver)", None
    if kind == "allowed":
        return f"{shown} (a relay, allowed by LARK_ALERT_ALLOWED_WEBHOOK_HOSTS)", None
    if not _HOOK_PATH.match(urlsplit(url).path):
        return shown, (
            "LARK_WEBHOOK_URL: the path must be /open-apis/bot/v2/hook/<token>; copy the whole "
            "webhook URL from the bot's settings in the group"
        )
    return shown, None


def _redis_line(url: str, timeout: float) -> tuple[str, str | None]:
    shown = safe_url(url)
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return shown, (
            f"REDIS_URL: {shown} did not answer PING ({type(error).__name__}: {error}); "
            "dedup would fall back to per process until it does"
        )
    finally:
        client.close()
    return f"{shown} (answered PING: dedup is fleet-wide)", None


def check(arguments: argparse.Namespace) -> int:
    settings = load_settings()
    sample = _card_maker(settings).sample_card()
    problems: list[str] = []
    lines: list[tuple[str, str]] = []
    if settings.webhook_url is None:
        lines.append(("LARK_WEBHOOK_URL", "not set: alerts are written to the log at WARNING, not posted"))
    else:
        shown, problem = _webhook_line(
            settings.webhook_url.get_secret_value(), settings.allowed_webhook_hosts
        )
        lines.append(("LARK_WEBHOOK_URL", shown))
        if problem:
            problems.append(problem)
    if settings.allowed_webhook_hosts:
        hosts = ", ".join(settings.allowed_webhook_hosts)
        lines.append(("LARK_ALERT_ALLOWED_WEBHOOK_HOSTS", f"{hosts} (besides Lark's hosts and loopback)"))
    signed = "set: cards are signed" if settings.webhook_secret else "not set: cards are not signed"
    lines.append(("LARK_WEBHOOK_SECRET", signed))
    if settings.keyword:
        lines.append(("LARK_ALERT_KEYWORD", f"{settings.keyword!r}, at the start of every card title"))
    if settings.redis_url is None:
        lines.append(("REDIS_URL", "not set: dedup is per process"))
    else:
        timeout = max(settings.redis_timeout, 1.0)
        shown, problem = _redis_line(settings.redis_url.get_secret_value(), timeout)
        lines.append(("REDIS_URL", shown))
        if problem:
            problems.append(problem)
    window = f"one card per error every {settings.rate_limit} s" if settings.rate_limit else "off"
    lines.append(("LARK_ALERT_RATE_LIMIT", window))
    template = str(settings.template) if settings.template else "built-in"
    lines.append(("card template", f"{template}: a sample card is {sample.size:,} of {CARD_BUDGET:,} bytes"))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name:<{width}}  {value}")
    if problems:
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return PROBLEM
    print("configuration OK")
    return OK


async def _post(webhook: LarkWebhook, card_json: str, timeout: float) -> LarkAnswer:
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        return await webhook.post(client, card_json)


def send_test(arguments: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.webhook_url is None:
        raise Problem(
            "LARK_WEBHOOK_URL is not set, so there is nowhere to send to; set it to the bot's "
            "webhook URL (Group settings → Bots → the custom bot)"
        )
    rendered = _card_maker(settings, " (test card from lark-alert send-test)").sample_card()
    webhook = webhook_for(destination_of(settings), arguments.timeout)
    assert webhook is not None  # there is a webhook URL
    signed = " (signed)" if settings.webhook_secret else ""
    print(f"Posting a sample card to {webhook.safe_url}{signed} ...")
    answer = asyncio.run(_post(webhook, rendered.json_text, arguments.timeout))
    if answer.outcome is Outcome.DELIVERED:
        print(
            f"Lark accepted the card: {answer.describe()}. Look for {_title(rendered.card)!r} in the group."
        )
        return OK
    if answer.http_status is None:
        raise Problem(
            f"could not reach {webhook.safe_url}: {answer.describe()}. Check LARK_WEBHOOK_URL and that "
            "this machine can reach that host (DNS, proxy, firewall)"
        )
    if answer.outcome is Outcome.RETRY:
        raise Problem(
            f"Lark did not take the card this time: {answer.describe()}. The middleware retries "
            "such answers; try again in a minute"
        )
    raise Problem(f"Lark refused the card: {answer.describe()}")


def _event(source: str) -> ErrorEvent:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Problem(f"cannot read the event file {source}: {error}") from None
    try:
        return event_from_json(text)
    except ValueError as error:
        where = "the event on stdin" if source == "-" else source
        raise Problem(f"{where}: {error}") from None


def preview(arguments: argparse.Namespace) -> int:
    cards = _card_maker(load_settings())
    if arguments.event:
        event = _event(arguments.event)
        rendered = cards.event_card(event, default_fingerprint(event))
    else:
        rendered = cards.sample_card(arguments.source)
    if arguments.html is None:
        print(json.dumps(rendered.card, ensure_ascii=False, indent=2))
        return OK
    _write_html(arguments.html, rendered)
    print(f"wrote {arguments.html} ({_title(rendered.card)}, {rendered.size:,} bytes)")
    return OK


def _write_html(path: Path, rendered: RenderedCard) -> None:
    caption = f"{rendered.size:,} of {CARD_BUDGET:,} bytes"
    intro = "Rendered by lark-alert preview; Lark's own rendering differs in details."
    try:
        path.write_text(page_html("Card preview", [ShownCard(rendered.card, caption)], intro=intro))
    except OSError as error:
        raise Problem(f"cannot write {path}: {error}") from None


def relay(arguments: argparse.Namespace) -> int:
    from ._sources.relay.app import relay_settings  # the relay's modules, only for this command

    relay_settings(load_settings())  # what is wrong is said here, before uvicorn starts
    try:
        import uvicorn
    except ImportError:
        raise Problem(
            "the relay runs on uvicorn, which is not installed: pip install 'lark-alert-middleware[relay]'"
        ) from None
    uvicorn.run(
        "lark_alert_middleware.relay:app",
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        server_header=False,
    )
    return OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lark-alert",
        description="Check, try and preview the lark-alert-middleware configuration in this environment.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(run=run)
        return sub

    command(check.__name__, check, "validate the configuration; say exactly what is wrong")
    send = command("send-test", send_test, "post a sample card to LARK_WEBHOOK_URL; report Lark's answer")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Lark (default 10)")
    show = command("preview", preview, "render the card for a sample or a JSON event")
    show.add_argument("--event", metavar="FILE", help="a JSON event document ('-' reads stdin)")
    show.add_argument("--html", metavar="FILE", type=Path, help="write an HTML page instead of JSON")
    show.add_argument(
        "--source",
        choices=SOURCES,
        default=HTTP,
        help="whose sample card: a failing request (http, the default) or another source",
    )
    serve = command("relay", relay, "serve the relay: Alertmanager, Grafana, Seq and webhooks as cards")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8025, help="port to listen on (default 8025)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except (ConfigurationError, Problem) as error:
        print(f"problem: {error}", file=sys.stderr)
        return PROBLEM
    except BrokenPipeError:
        # `lark-alert preview | head`: the reader left; say nothing more on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK

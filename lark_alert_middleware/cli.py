"""The command line: `lark-alert check | send-test | preview | routes | relay`.

Also `python -m lark_alert_middleware`.

Every command reads the same environment variables as the middleware. Exit status: 0 all
good, 1 a problem was found (and said in words), 2 the command was used wrongly.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._card.maker import CardMaker
from ._card.render import CARD_BUDGET
from ._card.sample import KINDS
from ._config import AlertSettings, ConfigurationError, load_settings, webhook_host_kind
from ._lark.urls import safe_url
from ._lark.webhook import LarkAnswer, LarkWebhook, Outcome, redact_url
from ._pipeline.build import DEFAULT_SERVICE, build_pipeline, destination_of, routed_destinations, webhook_for
from ._pipeline.fingerprint import default_fingerprint
from ._pipeline.redis_check import check_redis
from ._records import HTTP, LEVELS, SOURCES, Destination, ErrorEvent, ExceptionText, RenderedCard
from ._routes_config import Route, captured_statuses, status_ranges
from ._sources.event_json import event_from_json
from .preview import ShownCard, page_html

OK, PROBLEM, USAGE = 0, 1, 2
_HOOK_PATH = re.compile(r"^/open-apis/bot/v2/hook/[A-Za-z0-9_-]+$")


class Problem(Exception):
    """Something the user can fix; the message says what and how."""


def _card_maker(settings: AlertSettings, service_note: str = "") -> CardMaker:
    """The card maker the middleware would use, its template checked the way the middleware checks it
    (and every route's template too)."""
    pipeline = build_pipeline(settings)
    cards = pipeline.cards
    if service_note:
        cards.name_service(cards.settings.service + service_note)
    pipeline.check_cards()
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
        redis_report = check_redis(settings, timeout=max(settings.redis_timeout, 1.0))
        lines.extend(redis_report.lines)
        problems.extend(redis_report.problems)
    window = f"one card per error every {settings.rate_limit} s" if settings.rate_limit else "off"
    lines.append(("LARK_ALERT_RATE_LIMIT", window))
    template = str(settings.template) if settings.template else "built-in"
    lines.append(("card template", f"{template}: a sample card is {sample.size:,} of {CARD_BUDGET:,} bytes"))
    for route in settings.routes:
        shown, problem = _route_webhook_line(route, settings.allowed_webhook_hosts)
        lines.append((f"route {route.name}", shown))
        if problem:
            problems.append(problem)
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name:<{width}}  {value}")
    if problems:
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return PROBLEM
    print("configuration OK")
    return OK


def _route_webhook_line(route: Route, allowed_hosts: tuple[str, ...]) -> tuple[str, str | None]:
    if route.drop:
        return "drops what it matches", None
    if route.webhook_url is None:
        return "posts to LARK_WEBHOOK_URL", None
    shown, problem = _webhook_line(route.webhook_url, allowed_hosts)
    variable = route.webhook_url_env or "webhook_url"
    if problem:
        problem = f"LARK_ALERT_ROUTES: route {route.name!r}: {variable}: " + problem.split(": ", 1)[1]
    signed = " (signed)" if route.webhook_secret else ""
    return f"posts to {variable}: {shown}{signed}", problem


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
    elif arguments.kind:
        rendered = cards.kind_card(arguments.kind)
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


def routes(arguments: argparse.Namespace) -> int:
    settings = load_settings()
    destinations, router = routed_destinations(settings)
    service = settings.service or DEFAULT_SERVICE
    event = _routed_event(arguments)
    if event is None:
        _print_table(_route_rows(settings, destinations))
        return OK
    verdicts, targets = router.explain(event, service, settings.environment)
    route = event.route or "<unmatched>"
    print(
        f"An error: {event.status_code or '-'} {event.method or '-'} {event.path or '-'} (route {route}), "
        f"source {event.source}, exception {event.exception_type or '-'}"
    )
    numbers = [str(index) for index in range(1, len(verdicts) + 1)]
    if len(verdicts) > len(settings.routes):  # the default's, last
        numbers[-1] = "-"
    _print_table(
        [(number, verdict.route, verdict.reason) for number, verdict in zip(numbers, verdicts, strict=True)]
    )
    if not settings.routes:
        print("No routes are configured (LARK_ALERT_ROUTES): every error goes to the default destination.")
    names = [target.name for target in targets]
    print(f"Cards go to: {', '.join(names)}" if names else "Cards go nowhere: the error is routed away.")
    return OK


def _routed_event(arguments: argparse.Namespace) -> ErrorEvent | None:
    """The error the arguments describe, or None when they describe none."""
    given = [arguments.status, arguments.method, arguments.path, arguments.route, arguments.exception]
    given += [arguments.source, arguments.logger, arguments.level, arguments.label]
    if all(value is None for value in given):
        return None
    exception: BaseException | None = None
    exception_text = None
    if arguments.exception:
        kind = getattr(builtins, arguments.exception, None)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            exception = kind.__new__(kind)  # a builtin's own: matched along its MRO
        else:
            exception_text = ExceptionText(arguments.exception, "", "")
    labels = []
    for label in arguments.label or []:
        name, equals, value = label.partition("=")
        if not equals:
            raise Problem(f"--label {label}: write it as NAME=VALUE")
        labels.append((name, value))
    path = arguments.path or ""
    return ErrorEvent(
        timestamp=0.0,
        method=(arguments.method or ("GET" if arguments.path or arguments.status else "")).upper(),
        path=path,
        route=arguments.route or path or None,
        status_code=arguments.status or 0,
        exception=exception,
        exception_text=exception_text,
        source=arguments.source or HTTP,
        logger_name=arguments.logger,
        level=arguments.level,
        labels=tuple(labels),
    )


def _route_rows(settings: AlertSettings, destinations: list[Destination]) -> list[tuple[str, ...]]:
    by_name = {destination.name: destination for destination in destinations[1:]}
    rows: list[tuple[str, ...]] = [("#", "route", "match", "then", "window", "mention", "card", "posts to")]
    for index, route in enumerate(settings.routes, start=1):
        conditions = route.match.conditions()
        if route.status_codes is not None:
            conditions.append(("status_codes", status_ranges(route.status_codes)))
        match = " ".join(f"{key}={value}" for key, value in conditions) or "(any error)"
        if route.drop:
            rows.append((str(index), route.name, match, "drop", "-", "-", "-", "-"))
            continue
        destination = by_name[route.name]
        window = settings.rate_limit if route.rate_limit is None else route.rate_limit
        variable = route.webhook_url_env or ("webhook_url" if route.webhook_url else "LARK_WEBHOOK_URL")
        then = "continue" if route.continue_ else "stop"
        rows.append((str(index), route.name, match, then, *_delivery_columns(destination, window, variable)))
    widened = captured_statuses(settings.status_codes, settings.routes) != settings.status_codes
    rows.append(
        (
            "-",
            "(default)",
            "errors no route took" + (f", status={status_ranges(settings.status_codes)}" if widened else ""),
            "-",
            *_delivery_columns(destinations[0], settings.rate_limit, "LARK_WEBHOOK_URL"),
        )
    )
    return rows


def _delivery_columns(destination: Destination, window: int, variable: str) -> tuple[str, str, str, str]:
    mention = ",".join(destination.mentions) or "-"
    if destination.mention_after is not None:
        mention += f" (after {destination.mention_after})"
    card = os.path.relpath(destination.template) if destination.template else "built-in"
    if destination.webhook_url is None:
        posts_to = "the log (LARK_WEBHOOK_URL is not set)"
    else:
        signed = " (signed)" if destination.webhook_secret else ""
        posts_to = f"{variable}: {safe_url(destination.webhook_url, webhook=True)}{signed}"
    return (f"{window} s" if window else "off", mention, card, posts_to)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    if not rows:
        return
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


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
    show.add_argument(
        "--kind",
        choices=KINDS,
        help="a sample of this kind of card instead: an error's first card when it is new, back "
        "or repeated, an escalation, a recovered card or the daily summary",
    )
    table = command(
        "routes",
        routes,
        "print the routes (LARK_ALERT_ROUTES); with an error's details, say which routes match it and why",
    )
    table.add_argument("--status", type=int, help="the response status, e.g. 500")
    table.add_argument("--method", help="the request method, e.g. POST (default GET)")
    table.add_argument("--path", help="the request path, e.g. /payments/7")
    table.add_argument("--route", help="the route template, e.g. /payments/{id} (default: the path)")
    table.add_argument("--exception", metavar="TYPE", help="the exception's type, e.g. KeyError")
    table.add_argument("--source", choices=SOURCES, help="where the error was seen (default http)")
    table.add_argument("--logger", help="a log record's logger name")
    table.add_argument("--level", choices=LEVELS, help="the error's level")
    table.add_argument("--label", action="append", metavar="NAME=VALUE", help="a relayed alert's label")
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

"""Routes files and `Route` values: every mistake fails start-up with the route and the key named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from lark_alert_middleware import ConfigurationError, LarkAlertMiddleware, Route
from lark_alert_middleware._config import load_settings

WriteRoutes = Callable[[str], Path]
HOOK = "https://open.larksuite.com/open-apis/bot/v2/hook/t0k3n-payments"


@pytest.fixture(autouse=True)
def payments_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENTS_LARK_WEBHOOK", HOOK)
    monkeypatch.setenv("PAYMENTS_LARK_SECRET", "s3cret-payments")


def refusal(path: Path) -> str:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(routes=path)
    return str(raised.value)


# (the route, in TOML) -> what the message must say, besides the route's name.
MISTAKES = {
    "unknown key": (
        'name = "payments"\nwebhook_env = "PAYMENTS_LARK_WEBHOOK"',
        "webhook_env: unknown key; known keys are continue, drop, keyword,",
    ),
    "unknown match key": (
        'name = "payments"\nmatch = { stauts = "500" }',
        "match.stauts: unknown key; known keys are environment, exception, labels",
    ),
    "unset webhook variable": (
        'name = "payments"\nwebhook_url_env = "ORDERS_LARK_WEBHOOK"',
        "webhook_url_env: ORDERS_LARK_WEBHOOK is not set",
    ),
    "unset secret variable": (
        'name = "payments"\nwebhook_url_env = "PAYMENTS_LARK_WEBHOOK"\nwebhook_secret_env = "ORDERS_SECRET"',
        "webhook_secret_env: ORDERS_SECRET is not set",
    ),
    "variable name that is not one": (
        'name = "payments"\nwebhook_url_env = "https://open.larksuite.com/x"',
        "webhook_url_env: 'https://open.larksuite.com/x' is not the name of an environment variable",
    ),
    "missing template": (
        'name = "payments"\ntemplate = "cards/compact.json.j2"',
        "template: no such file: ",
    ),
    "template that is a folder": ('name = "payments"\ntemplate = "."', "is not a file"),
    "malformed webhook URL": (
        'name = "payments"\nwebhook_url_env = "MALFORMED_WEBHOOK"',
        "webhook_url_env: the URL in MALFORMED_WEBHOOK must be an http(s) URL",
    ),
    "disallowed webhook host": (
        'name = "payments"\nwebhook_url_env = "METADATA_WEBHOOK"',
        "webhook_url_env: the URL in METADATA_WEBHOOK http://169.254.169.254 is not https:// on a Lark",
    ),
    "unparsable status range": (
        'name = "payments"\nmatch = { status = "500-700" }',
        "match.status: 500-700 is not a range of HTTP statuses",
    ),
    "unparsable status filter": (
        'name = "payments"\nstatus_codes = "5xx"',
        "status_codes: '5xx' is not a status or a range like 500-599",
    ),
    "secret written in the file": (
        f'name = "payments"\nwebhook_url = "{HOOK}"',
        "webhook_url: a secret does not belong in a file that may be committed",
    ),
    "drop route that would send": (
        'name = "payments"\ndrop = true\nwebhook_url_env = "PAYMENTS_LARK_WEBHOOK"',
        "webhook_url_env: a route with drop = true sends nothing",
    ),
    "mention_after that is not positive": (
        'name = "payments"\nmention = ["all"]\nmention_after = 0',
        "mention_after: Input should be greater than 0",
    ),
    "mention_after without mention": (
        'name = "payments"\nmention_after = 20',
        "mention_after: set mention too",
    ),
    "mention that is markup": (
        'name = "payments"\nmention = ["<at id=all>"]',
        "mention: '<at id=all>' is not",
    ),
    "unknown source": (
        'name = "payments"\nmatch = { source = "cron" }',
        "match.source: 'cron' is not one of http, websocket, background",
    ),
    "unknown level": ('name = "payments"\nmatch = { level = "fatal" }', "match.level: 'fatal' is not one of"),
    "secret without a webhook": (
        'name = "payments"\nwebhook_secret_env = "PAYMENTS_LARK_SECRET"',
        "webhook_secret_env: a secret belongs to a webhook",
    ),
    "negative rate limit": ('name = "payments"\nrate_limit = -1', "rate_limit: Input should be greater than"),
    "pattern that is not text": (
        'name = "payments"\nmatch = { route = 7 }',
        "match.route: 7 is not a pattern",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_mistake_in_a_route_names_the_route_and_the_key(
    mistake: str, write_routes: WriteRoutes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALFORMED_WEBHOOK", "open.larksuite.com/open-apis/bot/v2/hook/t0k3n")
    monkeypatch.setenv("METADATA_WEBHOOK", "http://169.254.169.254/open-apis/bot/v2/hook/t0k3n")
    route, expected = MISTAKES[mistake]
    path = write_routes(f'[[route]]\nname = "drop-scanners"\ndrop = true\n\n[[route]]\n{route}\n')
    message = refusal(path)
    assert f"LARK_ALERT_ROUTES (routes=): route 'payments' (#2 in {path}): " in message
    assert expected in message
    assert "t0k3n" not in message and "s3cret" not in message


def test_every_mistake_in_a_file_is_reported_at_once(write_routes: WriteRoutes) -> None:
    path = write_routes("""
        [[route]]
        name = "payments"
        webhook_url_env = "ORDERS_LARK_WEBHOOK"

        [[route]]
        name = "on-call"
        match = { status = "5xx" }
    """)
    message = refusal(path)
    assert "route 'payments' (#1 in" in message and "ORDERS_LARK_WEBHOOK is not set" in message
    assert "route 'on-call' (#2 in" in message and "match.status: '5xx' is not a status" in message


def test_two_routes_with_one_name_are_refused(write_routes: WriteRoutes) -> None:
    path = write_routes('[[route]]\nname = "payments"\n\n[[route]]\nname = "payments"\n')
    assert "route 'payments' (#2 in" in (message := refusal(path))
    assert "name: another route is named 'payments'" in message


def test_a_route_without_a_name_is_named_by_its_place(write_routes: WriteRoutes) -> None:
    path = write_routes('[[route]]\nmatch = { status = "404" }\n')
    assert f"route #1 in {path}: name: is required" in refusal(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[route]\nname = 'x'\n", "is not valid TOML: "),
        ("name = 'payments'\n", "name: unknown key; the file holds [[route]] tables only"),
        ("# nothing yet\n", "holds no [[route]] tables"),
    ],
    ids=["invalid TOML", "a key outside [[route]]", "no routes"],
)
def test_a_file_that_holds_no_routes_is_refused(text: str, expected: str, write_routes: WriteRoutes) -> None:
    assert expected in refusal(write_routes(text))


def test_a_routes_file_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    assert "LARK_ALERT_ROUTES (routes=): cannot read " in refusal(tmp_path / "alert-routes.toml")


def test_the_environment_variable_names_the_file(
    write_routes: WriteRoutes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_routes('[[route]]\nname = "payments"\nwebhook_url_env = "PAYMENTS_LARK_WEBHOOK"\n')
    monkeypatch.setenv("LARK_ALERT_ROUTES", str(path))
    [route] = load_settings().routes
    assert route.name == "payments"
    assert route.webhook_url == HOOK
    assert HOOK not in repr(route) and "s3cret" not in repr(route)  # a read route still hides its secrets


def test_an_empty_environment_variable_means_no_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_ALERT_ROUTES", " ")
    assert load_settings().routes == ()


def test_a_template_is_found_beside_the_routes_file(write_routes: WriteRoutes) -> None:
    path = write_routes('[[route]]\nname = "quiet"\ntemplate = "cards/compact.json.j2"\n')
    (path.parent / "cards").mkdir()
    (path.parent / "cards" / "compact.json.j2").write_text("{}")
    [route] = load_settings(routes=path).routes
    assert route.template == path.parent / "cards" / "compact.json.j2"


def test_the_example_of_the_readme_reads_as_written(write_routes: WriteRoutes) -> None:
    path = write_routes(EXAMPLE)
    (path.parent / "cards").mkdir()
    (path.parent / "cards" / "compact.json.j2").write_text("{}")
    drop, payments, on_call, quiet = load_settings(routes=path).routes
    assert drop.drop and drop.match.status == frozenset({404}) and drop.match.route == ("<unmatched>",)
    assert payments.continue_ and payments.mention == ("ou_3f1c2d9e",)
    assert payments.webhook_secret is not None
    assert on_call.mention_after == 20 and on_call.rate_limit == 300
    assert quiet.match.conditions() == [] and not quiet.has_own_webhook


EXAMPLE = """
    [[route]]
    name = "drop-scanners"
    match = { route = "<unmatched>", status = "404" }
    drop = true

    [[route]]
    name = "payments"
    match = { route = "/payments/*" }
    webhook_url_env = "PAYMENTS_LARK_WEBHOOK"     # secrets by environment variable name
    webhook_secret_env = "PAYMENTS_LARK_SECRET"
    mention = ["ou_3f1c2d9e"]
    continue = true                               # also goes on to the routes below

    [[route]]
    name = "on-call"
    match = { status = "500-599" }
    webhook_url_env = "PAYMENTS_LARK_WEBHOOK"
    mention = ["all"]
    mention_after = 20
    rate_limit = 300

    [[route]]
    name = "quiet"
    match = {}
    template = "cards/compact.json.j2"
"""


def test_a_route_in_code_is_checked_when_made() -> None:
    with pytest.raises(ValidationError, match=r"match\.stauts\n  Extra inputs are not permitted"):
        Route(name="payments", match={"stauts": "500"})


def test_routes_in_code_may_be_mappings_and_are_named_in_messages() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(routes=[{"name": "payments", "match": {"status": "5xx"}}])
    assert "route 'payments' (#1 of routes=): match.status: '5xx' is not a status" in str(raised.value)


def test_routes_in_code_take_secrets_directly_and_labels_by_dotted_name() -> None:
    route = Route(
        name="payments",
        match={"labels.team": "payments", "status": "500-599"},
        webhook_url=HOOK,
        continue_=True,
    )
    [configured] = load_settings(routes=[route]).routes
    assert configured.match.labels == (("team", ("payments",)),)
    assert configured.webhook_url == HOOK
    assert configured.continue_


def test_a_route_in_code_is_held_to_the_webhook_host_rule() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(routes=[Route(name="relay", webhook_url="https://relay.example.com/hook")])
    assert (
        "route 'relay' (#1 of routes=): webhook_url: https://relay.example.com is not https:// on a"
        in str(raised.value)
    )
    allowed = load_settings(
        routes=[Route(name="relay", webhook_url="https://relay.example.com/hook")],
        allowed_webhook_hosts="relay.example.com",
    )
    assert [route.name for route in allowed.routes] == ["relay"]


def test_a_middleware_with_a_bad_route_refuses_to_start(write_routes: WriteRoutes) -> None:
    path = write_routes('[[route]]\nname = "payments"\nwebhook_url_env = "ORDERS_LARK_WEBHOOK"\n')
    middleware = LarkAlertMiddleware(lambda scope, receive, send: None, routes=path)  # type: ignore[arg-type,return-value]
    assert middleware.configuration_error is not None
    assert "route 'payments'" in str(middleware.configuration_error)
    assert "webhook_url_env: ORDERS_LARK_WEBHOOK is not set" in str(middleware.configuration_error)


def test_a_route_template_that_cannot_make_a_card_names_the_route(write_routes: WriteRoutes) -> None:
    path = write_routes('[[route]]\nname = "quiet"\ntemplate = "broken.json.j2"\n')
    (path.parent / "broken.json.j2").write_text('{"elements": [{{ oops }]}')
    middleware = LarkAlertMiddleware(lambda scope, receive, send: None, routes=path)  # type: ignore[arg-type,return-value]
    error = str(middleware.configuration_error)
    assert error.startswith("LARK_ALERT_ROUTES: route 'quiet': template: ")
    assert "broken.json.j2 line 1" in error

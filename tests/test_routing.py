"""Matching: first match wins unless `continue`; every key of a route must match; `drop` ends it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lark_alert_middleware import ErrorEvent, Route
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._pipeline.build import routed_destinations
from lark_alert_middleware._pipeline.routing import Router, exception_names
from lark_alert_middleware._records import ExceptionText

PAYMENTS = "https://open.larksuite.com/open-apis/bot/v2/hook/payments"
ONCALL = "https://open.larksuite.com/open-apis/bot/v2/hook/on-call"
EXAMPLE = [
    Route(name="drop-scanners", match={"route": "<unmatched>", "status": "404"}, drop=True),
    Route(name="payments", match={"route": "/payments/*"}, webhook_url=PAYMENTS, continue_=True),
    Route(name="on-call", match={"status": "500-599"}, webhook_url=ONCALL, rate_limit=300),
    Route(name="quiet", match={"status": "400-499"}),
]


def router_of(routes: list[Route], **options: Any) -> Router:
    return routed_destinations(load_settings(routes=routes, **options))[1]


def going_to(
    router: Router, event: ErrorEvent, service: str = "orders", environment: str = "production"
) -> list[str]:
    return [target.name for target in router.targets(event, service, environment)]


def http_error(
    status: int, path: str = "/orders/1", route: str | None = "/orders/{id}", **fields: Any
) -> ErrorEvent:
    return ErrorEvent(timestamp=0.0, method="POST", path=path, route=route, status_code=status, **fields)


def test_a_server_error_on_payments_goes_to_payments_and_on_call() -> None:
    event = http_error(500, "/payments/1", "/payments/{id}")
    assert going_to(router_of(EXAMPLE), event) == ["payments", "on-call"]


def test_a_scanner_404_goes_nowhere() -> None:
    assert going_to(router_of(EXAMPLE), http_error(404, "/wp-login.php", None)) == []


def test_the_first_matching_route_without_continue_ends_the_matching() -> None:
    assert going_to(router_of(EXAMPLE), http_error(503)) == ["on-call"]
    assert going_to(router_of(EXAMPLE), http_error(422)) == ["quiet"]


def test_an_error_no_route_matches_goes_to_the_default() -> None:
    assert going_to(router_of(EXAMPLE), ErrorEvent(timestamp=0.0, source="log", level="error")) == ["default"]


def test_a_continue_route_alone_keeps_the_error_from_the_default() -> None:
    router = router_of([Route(name="payments", match={"route": "/payments/*"}, continue_=True)])
    assert going_to(router, http_error(404, "/payments/1", "/payments/{id}")) == ["payments"]


def test_a_drop_after_a_continue_route_keeps_what_was_matched() -> None:
    routes = [
        Route(name="payments", match={"route": "/payments/*"}, continue_=True),
        Route(name="no-4xx", match={"status": "400-499"}, drop=True),
        Route(name="quiet", match={}),
    ]
    assert going_to(router_of(routes), http_error(404, "/payments/1", "/payments/{id}")) == ["payments"]
    assert going_to(router_of(routes), http_error(404)) == []


class PaymentDeclined(ConnectionError):
    pass


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("OSError", True),  # along the MRO: ConnectionError is an OSError
        ("ConnectionError", True),
        ("PaymentDeclined", True),
        ("tests.test_routing.*", True),
        ("*Declined", True),
        ("KeyError", False),
    ],
)
def test_an_exception_matches_by_any_class_along_its_mro(pattern: str, matches: bool) -> None:
    router = router_of([Route(name="network", match={"exception": pattern})])
    event = http_error(500, exception=PaymentDeclined("card declined"))
    assert going_to(router, event) == (["network"] if matches else ["default"])


def test_an_exception_already_made_text_matches_by_its_own_names() -> None:
    event = http_error(500, exception_text=ExceptionText("tests.test_routing.PaymentDeclined", "", ""))
    assert exception_names(event) == ["PaymentDeclined", "tests.test_routing.PaymentDeclined"]
    assert going_to(router_of([Route(name="p", match={"exception": "PaymentDeclined"})]), event) == ["p"]


def test_every_key_of_a_route_must_match() -> None:
    router = router_of([Route(name="payments-posts", match={"route": "/payments/*", "method": "post"})])
    assert going_to(router, http_error(500, "/payments/1", "/payments/{id}")) == ["payments-posts"]
    get = ErrorEvent(timestamp=0.0, method="GET", path="/payments/1", route="/payments/{id}", status_code=500)
    assert going_to(router, get) == ["default"]


def test_a_list_of_patterns_matches_any_of_them() -> None:
    router = router_of([Route(name="money", match={"path": ["/payments/*", "/refunds/*"]})])
    assert going_to(router, http_error(500, "/refunds/9", None)) == ["money"]
    assert going_to(router, http_error(500, "/orders/9", None)) == ["default"]


def test_source_logger_level_and_labels_match_what_the_event_says() -> None:
    routes = [
        Route(name="db-logs", match={"source": "log", "logger": "app.db*", "level": ["critical", "error"]}),
        Route(name="payments-team", match={"source": "relay", "labels": {"team": "payments"}}),
    ]
    router = router_of(routes)
    log = ErrorEvent(timestamp=0.0, source="log", logger_name="app.db.pool", level="error")
    assert going_to(router, log) == ["db-logs"]
    assert going_to(
        router, ErrorEvent(timestamp=0.0, source="log", logger_name="app.db", level="warning")
    ) == ["default"]
    relayed = ErrorEvent(timestamp=0.0, source="relay", labels=(("team", "payments"), ("severity", "page")))
    assert going_to(router, relayed) == ["payments-team"]
    assert going_to(router, ErrorEvent(timestamp=0.0, source="relay", labels=(("team", "search"),))) == [
        "default"
    ]


def test_environment_and_service_match_the_process_settings() -> None:
    router = router_of([Route(name="staging", match={"environment": "staging*", "service": "orders"})])
    assert going_to(router, http_error(500), environment="staging-eu") == ["staging"]
    assert going_to(router, http_error(500), environment="production") == ["default"]
    assert going_to(router, http_error(500), service="search", environment="staging") == ["default"]


def test_a_status_match_never_matches_an_error_without_a_status() -> None:
    router = router_of([Route(name="5xx", match={"status": "500-599"})])
    assert going_to(router, ErrorEvent(timestamp=0.0, source="background", level="error")) == ["default"]


def test_a_route_status_filter_lets_it_alert_on_statuses_the_default_leaves_out() -> None:
    routes = [Route(name="quiet", match={"route": "/orders/*"}, status_codes="400-499")]
    settings = load_settings(routes=routes, status_codes="500-599")
    router = routed_destinations(settings)[1]
    assert going_to(router, http_error(404)) == ["quiet"]
    assert going_to(router, http_error(404, "/users/1", "/users/{id}")) == []  # captured for quiet only
    assert going_to(router, http_error(500)) == ["default"]  # outside quiet's filter: goes on
    assert going_to(router, ErrorEvent(timestamp=0.0, source="log", level="error")) == [
        "default"
    ]  # no status


def test_explain_says_why_each_route_did_or_did_not_match() -> None:
    verdicts, targets = router_of(EXAMPLE).explain(
        http_error(500, "/payments/7", "/payments/{id}"), "app", "prod"
    )
    assert [(verdict.route, verdict.matched, verdict.reason) for verdict in verdicts] == [
        ("drop-scanners", False, "status 500 is not 404"),
        ("payments", True, "matches, and goes on (continue = true)"),
        ("on-call", True, "matches"),
        ("quiet", False, "not reached: on-call matched and ends the matching"),
    ]
    assert [target.name for target in targets] == ["payments", "on-call"]


def test_each_route_has_its_own_window_and_the_default_the_global_one() -> None:
    destinations, router = routed_destinations(load_settings(routes=EXAMPLE, rate_limit=30))
    targets = router.targets(http_error(500, "/payments/1", "/payments/{id}"), "app", "production")
    assert [(target.name, target.window_seconds) for target in targets] == [
        ("payments", 30),
        ("on-call", 300),
    ]
    assert [destination.name for destination in destinations] == ["default", "payments", "on-call", "quiet"]
    assert router.longest_window == 300


# Any text, lone surrogates (undecodable bytes) included, and markup and glob characters.
texts = st.text() | st.sampled_from(["\udcff/x", "<at id=all></at>", "{{ x }}", "*", "[", "/payments/[!"])


@settings(max_examples=200, deadline=None)
@given(
    method=texts,
    path=texts,
    route=st.none() | texts,
    status=st.integers(0, 999),
    logger=st.none() | texts,
    labels=st.lists(st.tuples(texts, texts), max_size=4),
)
def test_matching_hostile_events_never_raises_and_goes_only_where_routes_say(
    method: str, path: str, route: str | None, status: int, logger: str | None, labels: list[tuple[str, str]]
) -> None:
    event = ErrorEvent(
        timestamp=0.0,
        method=method,
        path=path,
        route=route,
        status_code=status,
        logger_name=logger,
        labels=tuple(labels),
        exception=PaymentDeclined(path),
    )
    router = HOSTILE_ROUTER
    names = going_to(router, event)
    assert set(names) <= {"default", "payments", "on-call", "quiet", "labelled"}
    verdicts, targets = router.explain(event, "app", "production")
    assert [target.name for target in targets] == names
    assert all(isinstance(verdict.reason, str) for verdict in verdicts)


HOSTILE_ROUTER = router_of(
    [*EXAMPLE, Route(name="labelled", match={"labels.team": "pay*", "logger": "*", "exception": "OSError"})]
)

"""Configuration: environment first, keyword overrides, errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from lark_alert_middleware import ConfigurationError, LarkAlertMiddleware
from lark_alert_middleware._config import load_settings, parse_status_codes


def test_defaults_alert_on_every_4xx_and_5xx_with_a_60_second_window() -> None:
    settings = load_settings()
    assert settings.status_codes == frozenset(range(400, 600))
    assert settings.rate_limit == 60
    assert settings.webhook_url is None and settings.redis_url is None
    assert settings.max_body_bytes == 8192
    assert settings.environment == "production"
    assert settings.enabled


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", "https://open.larksuite.com/open-apis/bot/v2/hook/abc")
    monkeypatch.setenv("LARK_ALERT_RATE_LIMIT", "30")
    monkeypatch.setenv("LARK_ALERT_STATUS_CODES", "500-599,429")
    monkeypatch.setenv("LARK_ALERT_EXCLUDE_PATHS", "/health, /metrics*")
    monkeypatch.setenv("LARK_ALERT_ENABLED", "false")
    settings = load_settings()
    assert settings.webhook_url is not None
    assert settings.webhook_url.get_secret_value().endswith("/abc")
    assert settings.rate_limit == 30
    assert settings.status_codes == frozenset(range(500, 600)) | {429}
    assert settings.exclude_paths == ("/health", "/metrics*")
    assert not settings.enabled


def test_keyword_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_ALERT_RATE_LIMIT", "30")
    assert load_settings(rate_limit=5).rate_limit == 5


def test_zero_rate_limit_turns_dedup_off() -> None:
    assert load_settings(rate_limit=0).rate_limit == 0


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LARK_ALERT_RATE_LIMIT", "soon", "LARK_ALERT_RATE_LIMIT (rate_limit=)"),
        ("LARK_ALERT_RATE_LIMIT", "-1", "LARK_ALERT_RATE_LIMIT (rate_limit=)"),
        (
            "LARK_ALERT_STATUS_CODES",
            "500-",
            "LARK_ALERT_STATUS_CODES (status_codes=): '500-' is not a status",
        ),
        ("LARK_ALERT_STATUS_CODES", "599-500", "599-500 is not a range of HTTP statuses"),
        ("LARK_ALERT_STATUS_CODES", "600-700", "600-700 is not a range of HTTP statuses"),
        ("LARK_ALERT_TEMPLATE", "/no/such/card.json.j2", "LARK_ALERT_TEMPLATE (template=): no such file"),
        ("REDIS_URL", "http://localhost:6379", "REDIS_URL (redis_url=): must start with redis://"),
        ("REDIS_URL", "redis://127.0.0.1:six/0", "REDIS_URL (redis_url=): redis-py cannot read it"),
        ("REDIS_URL", "redis://[::1/0", "REDIS_URL (redis_url=): redis-py cannot read it"),
        (
            "REDIS_URL",
            "unix:///run/redis.sock?socket_timeout=soon",
            "REDIS_URL (redis_url=): redis-py cannot",
        ),
        (
            "LARK_WEBHOOK_URL",
            "open.larksuite.com/hook",
            "LARK_WEBHOOK_URL (webhook_url=): must be an http(s) URL",
        ),
        (  # accepted by urllib, refused by httpx when posting
            "LARK_WEBHOOK_URL",
            "https://open.larksuite.com/open-apis/bot/v2/hook/to\x7fken",
            "LARK_WEBHOOK_URL (webhook_url=): must be an http(s) URL",
        ),
        ("LARK_ALERT_EXCLUDE_PATHS", "health", "LARK_ALERT_EXCLUDE_PATHS (exclude_paths=)"),
        ("LARK_ALERT_MENTION", "<at id=all>", "LARK_ALERT_MENTION (mention=)"),
    ],
)
def test_bad_values_fail_with_the_variable_and_the_problem(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert expected in str(raised.value)


ADVICE = (
    "use the https:// webhook URL from the bot's settings, "
    "or add the host to LARK_ALERT_ALLOWED_WEBHOOK_HOSTS for a relay"
)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata: "configuration OK" no more
        "https://10.0.0.7/open-apis/bot/v2/hook/t0ken-x9",
        "https://hooks.example.com/open-apis/bot/v2/hook/t0ken-x9",
        "http://open.feishu.cn/open-apis/bot/v2/hook/t0ken-x9",  # a Lark host, but every card in clear
        "http://open.larksuite.com/open-apis/bot/v2/hook/t0ken-x9",
        "https://open.larksuite.com.example.com/open-apis/bot/v2/hook/t0ken-x9",
        "https://open.feishu.cn@hooks.example.com/open-apis/bot/v2/hook/t0ken-x9",
        "http://localhost.example.com/hook",
        "http://0.0.0.0:8026/hook",
    ],
)
def test_a_webhook_that_is_not_https_on_a_lark_host_or_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", url)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "LARK_WEBHOOK_URL (webhook_url=): " in message
    assert "is not https:// on a Lark or Feishu host" in message and ADVICE in message
    assert "t0ken-x9" not in message


def test_a_refused_webhook_keeps_the_middleware_from_starting() -> None:
    middleware = LarkAlertMiddleware(Starlette(), webhook_url="http://169.254.169.254/latest/meta-data/")
    assert middleware.configuration_error is not None
    assert "LARK_WEBHOOK_URL (webhook_url=): http://169.254.169.254 is not https://" in str(
        middleware.configuration_error
    )


def test_a_refused_webhook_makes_lifespan_start_up_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", "https://hooks.example.com/open-apis/bot/v2/hook/tok")
    app = Starlette()
    app.add_middleware(LarkAlertMiddleware)
    with (
        pytest.raises(ConfigurationError, match=r"LARK_WEBHOOK_URL.*LARK_ALERT_ALLOWED_WEBHOOK_HOSTS"),
        TestClient(app),
    ):
        pass


@pytest.mark.parametrize(
    "url",
    [
        "https://open.larksuite.com/open-apis/bot/v2/hook/tok",
        "https://open.feishu.cn/open-apis/bot/v2/hook/tok",
        "https://open.larkoffice.com/open-apis/bot/v2/hook/tok",
        "https://Open.Feishu.CN/open-apis/bot/v2/hook/tok",
        "http://127.0.0.1:8026/open-apis/bot/v2/hook/tok",  # test receivers, over http or https
        "https://127.8.9.10/hook",
        "http://[::1]:8026/hook",
        "http://localhost:8026/hook",
    ],
)
def test_https_on_a_lark_host_and_any_loopback_receiver_are_accepted(url: str) -> None:
    assert load_settings(webhook_url=url).webhook_url is not None


def test_listed_hosts_are_accepted_over_http_or_https_matched_exactly_and_in_any_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LARK_ALERT_ALLOWED_WEBHOOK_HOSTS", "Relay.Example.com, lark")
    for url in (
        "https://relay.example.com/hook?token=t",
        "http://RELAY.example.com/hook",
        "http://lark:8026/x",
    ):
        assert load_settings(webhook_url=url).webhook_url is not None
    for url in ("https://evil.relay.example.com/hook", "https://relay.example.com.evil.net/hook"):
        with pytest.raises(ConfigurationError, match="LARK_WEBHOOK_URL"):
            load_settings(webhook_url=url)


def test_allowed_hosts_are_also_a_keyword_argument() -> None:
    settings = load_settings(
        allowed_webhook_hosts=["relay.example.com"], webhook_url="https://relay.example.com/h"
    )
    assert settings.allowed_webhook_hosts == ("relay.example.com",)


def test_listing_a_lark_host_does_not_allow_it_over_plain_http() -> None:
    with pytest.raises(ConfigurationError, match="LARK_WEBHOOK_URL"):
        load_settings(
            allowed_webhook_hosts="open.feishu.cn",
            webhook_url="http://open.feishu.cn/open-apis/bot/v2/hook/t",
        )


@pytest.mark.parametrize(
    "entry", ["*.example.com", "https://relay.example.com", "relay.example.com:8443", "relay/x"]
)
def test_allowed_hosts_are_exact_host_names_without_wildcards(
    monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    monkeypatch.setenv("LARK_ALERT_ALLOWED_WEBHOOK_HOSTS", entry)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert f"LARK_ALERT_ALLOWED_WEBHOOK_HOSTS (allowed_webhook_hosts=): {entry!r} is not a host name" in str(
        raised.value
    )


def test_secrets_are_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", "ftp://host/open-apis/bot/v2/hook/very-secret-token")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert "very-secret-token" not in str(raised.value)


def test_an_unreadable_redis_url_keeps_the_middleware_from_starting_without_showing_it() -> None:
    # A / in the password ends the host part: the "port" redis-py complains about is the password.
    middleware = LarkAlertMiddleware(Starlette(), redis_url="redis://:hunter/2@127.0.0.1:6379/0")
    assert "REDIS_URL (redis_url=): redis-py cannot read it" in str(middleware.configuration_error)
    assert "hunter" not in str(middleware.configuration_error)


def test_unknown_keyword_lists_the_known_options() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option; known options are .*rate_limit"):
        load_settings(rate_limt=5)


def test_status_codes_accept_ints_ranges_and_strings() -> None:
    assert parse_status_codes("500") == {500}
    assert parse_status_codes([500, range(502, 505)]) == {500, 502, 503, 504}
    assert parse_status_codes(" 400 - 401 , 503") == {400, 401, 503}


def test_a_template_that_does_not_render_a_card_fails_at_start_up(tmp_path: Path) -> None:
    template = tmp_path / "card.json.j2"
    template.write_text('{"header": {"title": "{{ title }}"}')  # not valid JSON: missing brace
    middleware = LarkAlertMiddleware(Starlette(), template=str(template))
    assert middleware.configuration_error is not None
    assert "LARK_ALERT_TEMPLATE (template=)" in str(middleware.configuration_error)
    assert "does not render a valid card" in str(middleware.configuration_error)


def test_a_template_with_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    template = tmp_path / "card.json.j2"
    template.write_text('{\n"elements": [{% for x in %}]\n}')
    middleware = LarkAlertMiddleware(Starlette(), template=str(template))
    assert "line 2" in str(middleware.configuration_error)


def test_bad_configuration_makes_lifespan_start_up_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_ALERT_STATUS_CODES", "five hundred")
    app = Starlette()
    app.add_middleware(LarkAlertMiddleware)
    with pytest.raises(ConfigurationError, match="LARK_ALERT_STATUS_CODES"), TestClient(app):
        pass


def test_bad_configuration_fails_requests_when_there_is_no_lifespan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_ALERT_RATE_LIMIT", "often")
    app = Starlette()
    app.add_middleware(LarkAlertMiddleware)
    client = TestClient(app)
    with pytest.raises(ConfigurationError, match="LARK_ALERT_RATE_LIMIT"):
        client.get("/")


def test_every_setting_is_a_typed_keyword_argument() -> None:
    from lark_alert_middleware._config import AlertOptions, AlertSettings

    assert set(AlertOptions.__annotations__) == set(AlertSettings.model_fields)


@pytest.mark.parametrize("variable", ["LARK_ALERT_SERVICE", "LARK_ALERT_KEYWORD", "LARK_ALERT_ENV"])
def test_settings_that_are_not_utf_8_text_are_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "orders\udcff")  # the bytes b"orders\xff", as the environment gives them
    middleware = LarkAlertMiddleware(Starlette())
    assert middleware.configuration_error is not None
    assert f"{variable} " in str(middleware.configuration_error)
    assert "not UTF-8 text" in str(middleware.configuration_error) or "unicode string" in str(
        middleware.configuration_error
    )

"""safe_url: every URL printed or logged shows where it points and none of its credentials."""

from __future__ import annotations

import pytest

from lark_alert_middleware._lark.urls import safe_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("unix:///run/redis.sock?password=S&db=0", "unix:///run/redis.sock?password=***&db=0"),
        ("unix:/run/redis.sock?password=S", "unix:/run/redis.sock?password=***"),
        ("redis://:S@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://default:S@cache.internal:6380/1", "rediss://default:***@cache.internal:6380/1"),
        ("redis://cache.internal/0?ssl_password=S&socket_timeout=1", "redis://cache.internal/0?ssl_password=***&socket_timeout=1"),
        ("https://relay.example/hook?access_token=S&key=K&sig=G&auth=A&team=ops", "https://relay.example/hook?access_token=***&key=***&sig=***&auth=***&team=ops"),
        ("https://relay.example/hook?Api-Key=S&pass%77ord=P", "https://relay.example/hook?Api-Key=***&pass%77ord=***"),
        ("https://S@relay.example/hook", "https://***@relay.example/hook"),
        ("https://S:@relay.example/hook", "https://***:@relay.example/hook"),
        ("https://ops:S@relay.example/hook", "https://ops:***@relay.example/hook"),
        ("https://app.example/cb#access_token=S&state=1", "https://app.example/cb#access_token=***&state=1"),
        ("http://[::1]:8080/x?token=S", "http://[::1]:8080/x?token=***"),
    ],
)  # fmt: skip
def test_credentials_are_masked_and_the_rest_reads_as_configured(url: str, shown: str) -> None:
    assert safe_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis:6379/0",
        "redis://worker@redis:6379/0",
        "https://open.feishu.cn/docs?lang=en",
        "not a url",
    ],
)
def test_a_url_without_credentials_is_unchanged(url: str) -> None:
    assert safe_url(url) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://open.larksuite.com/open-apis/bot/v2/hook/0123-secret", "https://open.larksuite.com/open-apis/bot/v2/hook/***"),
        ("http://127.0.0.1:8123/open-apis/bot/v2/hook/t/", "http://127.0.0.1:8123/open-apis/bot/v2/hook/***"),
        ("https://relay.example/hook?token=S", "https://relay.example/***?token=***"),
        ("https://relay.example/api/alert?code=S&team=ops", "https://relay.example/api/***?code=***&team=***"),
        ("https://ops:S@relay.example", "https://ops:***@relay.example/***"),
    ],
)  # fmt: skip
def test_a_webhook_url_also_loses_its_last_path_segment_and_every_query_value(url: str, shown: str) -> None:
    assert safe_url(url, webhook=True) == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://:c2VjcmV0/Zm9v@cache.internal:6379/0",  # base64 password, its / not percent-encoded
        "redis://:123/456@cache.internal:6379/0",  # which redis-py would even read (port 123)
        "rediss://ops:pa?ss@cache.internal:6380",
        "https://ops:pa#ss@relay.example/hook",
    ],
)
def test_a_url_with_an_at_sign_after_its_host_shows_nothing_past_the_scheme(url: str) -> None:
    assert safe_url(url) == url.split("://")[0] + "://***"
    assert safe_url(url, webhook=True) == url.split("://")[0] + "://***"

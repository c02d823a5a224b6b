"""Redaction: secrets by name and by shape, everywhere, with a marker that says what went."""

from __future__ import annotations

import json

import pytest

from lark_alert_middleware._card.redact import WINDOW, Redactor, luhn_valid, marker
from lark_alert_middleware._card.view import FULL_SIZES

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
    assert R.json(document, max_depth=12) == {
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


@pytest.mark.parametrize(
    "text",
    ["error: token=S3CR3T", "q=token=S3CR3T", "https://h/cb?access_token=S3CR3T", "note: x, api_key: S3CR3T"],
)
def test_a_harmless_name_never_swallows_a_secret_pair_after_it(text: str) -> None:
    redacted = R.text(text)
    assert "S3CR3T" not in redacted and "[redacted " in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('password="S3CR3T"', 'password="[redacted password]"'),
        ("password='S3CR3T'", "password='[redacted password]'"),
        ("password = S3CR3T", "password = [redacted password]"),
        ("password:   S3CR3T", "password:   [redacted password]"),
        ("{'password': 'S3CR3T', 'user': 'ann'}", "{'password': '[redacted password]', 'user': 'ann'}"),
        ('connect(password="S3CR3T")', 'connect(password="[redacted password]")'),
        ("db:\n  password: S3CR3T\n  host: db", "db:\n  password: [redacted password]\n  host: db"),
        ("<password>S3CR3T</password>", "<password>[redacted password]</password>"),
        ('["password", "S3CR3T"]', '["password", "[redacted password]"]'),
        ("(b'authorization', b'Bearer S3CR3T')", "(b'authorization', b'[redacted authorization]')"),
        ('{\\"password\\": \\"S3CR3T\\"}', '{\\"password\\": \\"[redacted password]\\"}'),
        ("password => 'S3CR3T'", "password => '[redacted password]'"),
    ],
)
def test_quoted_spaced_and_structured_values_of_secret_names_are_replaced(text: str, expected: str) -> None:
    assert R.text(text) == expected


def test_code_is_secret_as_a_query_or_form_parameter_only() -> None:
    assert R.pair("code", "S3CR3T") == "[redacted code]"
    assert R.text("https://h/cb?state=x&code=S3CR3T") == "https://h/cb?state=x&code=[redacted code]"
    assert R.text('{"status_code": 500, "code": 404} error code=12') == (
        '{"status_code": 500, "code": 404} error code=12'
    )
    assert not R.is_secret_name("status_code")


@pytest.mark.parametrize(
    "name",
    [
        "PHPSESSID",
        "sessid",
        "ticket",
        "hmac",
        "nonce",
        "cred",
        "creds",
        "pw",
        "Authentication",
        "X-Shopify-Hmac-Sha256",
        "X-Hub-Signature-256",
    ],
)
def test_more_secret_names(name: str) -> None:
    assert R.is_secret_name(name)


@pytest.mark.parametrize("name", ["KeyError", "token_error", "InvalidSignatureError", "AuthenticationFailed"])
def test_names_about_a_secret_are_not_secret(name: str) -> None:
    assert not R.is_secret_name(name)


@pytest.mark.parametrize(
    "text",
    [
        "KeyError: 'token'",
        "token validation failed for user bob",
        "if token == expected:",
        "Content-Type: application/json",
        "author_id=5 keyword=monkey",
        "https://example.com/search?q=mugs&page=2",
        "ssh://git@github.com/org/repo.git",
        "-----BEGIN CERTIFICATE-----",
        "pk_live_51HqLyjWDarjtT1zdp7dc",
    ],
)
def test_ordinary_text_stays_as_it_is(text: str) -> None:
    assert R.text(text) == text


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("ghp_" + "a1B2" * 9, "github token"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github token"),
        ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", "slack token"),
        ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe key"),
        ("rk_test_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe key"),
        ("https://open.feishu.cn/open-apis/bot/v2/hook/0a1b2c3d-S3CR3T", "webhook token"),
        ("https://hooks.slack.com/services/T00000000/B00000000/S3CR3TXXXXXXXXXXXXXXXXXX", "webhook token"),
        ("https://discord.com/api/webhooks/123456789/S3CR3T-token_x", "webhook token"),
        ("https://S3CR3T0123@github.com/org/repo.git", "credentials"),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nS3CR3T\n-----END PGP PRIVATE KEY BLOCK-----", "private key"),
        ("sent with token ghx0123S3CR3T", "credentials"),
    ],
)
def test_well_known_token_shapes_are_removed(text: str, kind: str) -> None:
    redacted = R.text(f"see {text} here")
    assert "S3CR3T" not in redacted and "a1B2a1B2" not in redacted and "4eC39" not in redacted
    assert "abcdefghijklmnop" not in redacted and "AbCdEf" not in redacted
    assert marker(kind) in redacted


def test_a_jwt_glued_to_a_prefix_keeps_the_prefix() -> None:
    assert R.text("tokeneyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl") == "token[redacted jwt]"


@pytest.mark.parametrize(
    ("path", "route", "shown"),
    [
        ("/reset/S3CR3T", "/reset/{token}", "/reset/[redacted token]"),
        ("/v1/reset/S3CR3T", "/v1/reset/{token}", "/v1/reset/[redacted token]"),
        ("/api/v1/reset/S3CR3T", "/v1/reset/{token}", "/api/v1/reset/[redacted token]"),  # behind a root path
        (
            "/u/7/sessions/S3CR3T",
            "/u/{user_id:int}/sessions/{session_id}",
            "/u/7/sessions/[redacted session_id]",
        ),
        ("/files/a/S3CR3T/b", "/files/{signature:path}", "/files/[redacted signature]"),
        ("/items/42", "/items/{item_id}", "/items/42"),
        ("/reset/x/y", "/reset/{token}", "/reset/x/y"),  # the route does not match: text rules only
        ("/login/password=S3CR3T", "/login/{rest}", "/login/password=[redacted password]"),
        ("/reset/S3CR3T", "/reset/{token:unknown}", "/reset/[redacted token]"),
        ("/reset/S3CR3T", "/reset/{token", "/reset/S3CR3T"),
    ],
)
def test_path_parameters_named_like_secrets_are_replaced(path: str, route: str, shown: str) -> None:
    assert R.path(path, route) == shown


def test_a_path_without_a_route_is_redacted_as_text() -> None:
    assert R.path("/cb;jsessionid=S3CR3T", None) == "/cb;jsessionid=[redacted jsessionid]"


def test_the_window_is_several_times_what_a_card_shows() -> None:
    largest = max(FULL_SIZES.body, FULL_SIZES.traceback, FULL_SIZES.message, FULL_SIZES.value)
    assert 4 * largest <= WINDOW


def test_a_long_text_is_redacted_only_as_far_as_a_card_shows() -> None:
    long_text = "password=S3CR3T " + "x" * (10 * WINDOW)
    shown = R.excerpt(long_text)
    assert len(shown) < WINDOW + 100 and shown.endswith("…")
    assert shown.startswith("password=[redacted password] ")


def test_a_token_cut_by_the_window_is_left_out_whole() -> None:
    token_start = WINDOW - 100
    text = "a " * (token_start // 2) + "eyJ" + "x" * 5000 + ".eyJy.sig rest"
    shown = R.excerpt(text)
    assert "eyJ" not in shown and shown.endswith(" …")


def test_a_kept_end_starts_at_a_whole_line() -> None:
    head = "prefix password: " + "S3CR3T " * (WINDOW // 7)  # a value whose name is outside the window
    traceback = head + "\n" + "  File x, line 1\n" * 100 + "ValueError: boom"
    shown = R.excerpt(traceback, keep_end=True)
    assert shown.startswith("…  File x") and shown.endswith("ValueError: boom") and "S3CR3T" not in shown


def test_the_end_of_a_private_key_whose_start_was_cut_off_is_replaced() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "QUJD\n" * (WINDOW // 2) + "-----END RSA PRIVATE KEY-----"
    shown = R.excerpt(key + "\nValueError: bad key", keep_end=True)
    assert "QUJD" not in shown and shown == "…[redacted private key]\nValueError: bad key"


def test_json_is_cut_at_its_depth_limit_without_recursing_deeper() -> None:
    document: object = "S3CR3T"
    for _ in range(5000):  # deeper than the interpreter's recursion limit
        document = {"a": [document]}
    shown = json.dumps(R.json(document, max_depth=12), ensure_ascii=False)
    assert shown.count('{"a"') == 6 and shown.endswith('["{… 1 keys}"]}]}]}]}]}]}')


def test_a_wide_json_document_is_redacted_as_far_as_a_card_shows() -> None:
    document = {"items": [{"id": index, "note": "x" * 10} for index in range(100_000)]}
    shown = R.json(document, max_depth=12)
    assert len(json.dumps(shown, indent=2)) < 4 * WINDOW
    assert shown["items"][-1].endswith("more items")


def test_secret_pairs_in_json_arrays_are_redacted() -> None:
    document = {"headers": [["Authorization", "Bearer S3CR3T"], ["Accept", "text/html"]], "pw": "S3CR3T"}
    assert R.json(document, max_depth=12) == {
        "headers": [["Authorization", "[redacted authorization]"], ["Accept", "text/html"]],
        "pw": "[redacted pw]",
    }


def test_a_secret_in_the_name_of_a_secret_value_is_not_in_its_marker() -> None:
    name = "token_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.S3CR3Tsignature"
    assert "S3CR3T" not in R.pair(name, "x")
    assert "S3CR3T" not in json.dumps(R.json({name: "x", "list": [[name, "y"]]}, max_depth=12))

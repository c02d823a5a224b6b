"""Realistic leaks, each with the secret that must not reach a card, and realistic text that must.

A case says where its text goes on the alert: `header:<name>`, `query`, a request body (`form`,
`multipart`, `json`, `text`, `xml`), `response`, the exception's `message`, a `traceback` line,
or the request path of a route (`path:<template>`). Secrets are letters and digits only, so that
a leak shows as it is whatever escaping its place on the card gets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    place: str
    text: str
    secret: str  # for a non-secret: what must be shown
    kind: str | None = None  # the kind the marker names, where a marker is expected


def multipart(disposition: str, value: str) -> str:
    return f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n--XyZ--\r\n"


GITHUB_TOKEN = "ghp_Tg3iT5hU7bP9aT1kL3mN5oP7qR9sT1uV3wX"
JWT_HEAD = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ"

LEAKS = [
    # -- headers ------------------------------------------------------------------------------
    Case("bearer", "header:Authorization", "Bearer hR7kQ2mZp9Xw4Lt6", "hR7kQ2mZp9Xw4Lt6", "authorization"),
    Case(
        "basic",
        "header:Authorization",
        "Basic YWxpY2U6aHVudGVyMjJ4eXo=",
        "YWxpY2U6aHVudGVyMjJ4eXo",
        "authorization",
    ),
    Case("proxy", "header:Proxy-Authorization", "Basic cHJveHk6UHIweHlQYXNz", "cHJveHk6UHIweHlQYXNz"),
    Case("cookie", "header:Cookie", "theme=dark; sessionid=Ck29xLmQ7vRt5Wz", "Ck29xLmQ7vRt5Wz", "cookie"),
    Case("api-key-header", "header:X-API-Key", "Ak4mP9qR2sT7vW1x", "Ak4mP9qR2sT7vW1x", "x-api-key"),
    Case("auth-token-header", "header:X-Auth-Token", "At5nQ8rS3tU6vX2y", "At5nQ8rS3tU6vX2y", "x-auth-token"),
    Case("authentication", "header:Authentication", "Au7pR1sT4uV8wY3z", "Au7pR1sT4uV8wY3z", "authentication"),
    Case("shopify-hmac", "header:X-Shopify-Hmac-Sha256", "Sh0pHm4cQ9rT2vX5z7", "Sh0pHm4cQ9rT2vX5z7"),
    Case("hub-signature", "header:X-Hub-Signature-256", "sha256=Gh9bS1gN4tR7uR3e", "Gh9bS1gN4tR7uR3e"),
    Case("csrf-header", "header:X-CSRF-Token", "Cs6rF2tK8nQ4pL1m", "Cs6rF2tK8nQ4pL1m", "x-csrf-token"),
    Case("amz-security-token", "header:X-Amz-Security-Token", "Am3zS5eC7uR9tY2k", "Am3zS5eC7uR9tY2k"),
    Case("session-header", "header:X-Session-Id", "Se5sI0nQ3dR6tY9u", "Se5sI0nQ3dR6tY9u", "x-session-id"),
    Case("slack-signature", "header:X-Slack-Signature", "v0=Sl4ckS1gN7tR2eQ5", "Sl4ckS1gN7tR2eQ5"),
    Case(
        "token-in-other-header",
        "header:X-Debug",
        "upstream said token=Db7gT4kN1mQ8pR2s",
        "Db7gT4kN1mQ8pR2s",
        "token",
    ),
    Case(
        "code-in-referer",
        "header:Referer",
        "https://shop.example.com/cb?code=Rf2cO5dE8qW1eR4t&state=x",
        "Rf2cO5dE8qW1eR4t",
        "code",
    ),
    Case(
        "url-password-header",
        "header:X-Forwarded-Url",
        "https://user:Xf9pW3dL6kQ1mZ4n@internal.example.com/x",
        "Xf9pW3dL6kQ1mZ4n",
        "password",
    ),
    # -- query strings ------------------------------------------------------------------------
    Case("access-token", "query", "access_token=Qa1cC3eS5sT7oK9n&page=2", "Qa1cC3eS5sT7oK9n", "access_token"),
    Case("oauth-code", "query", "code=Qc2oD4eA6uT8hZ0x&state=abc", "Qc2oD4eA6uT8hZ0x", "code"),
    Case("api-key-query", "query", "api_key=Qk3pI5kE7yZ9aB1c", "Qk3pI5kE7yZ9aB1c", "api_key"),
    Case("password-query", "query", "password=Qp4aS6sW8oR0dX2z&user=ann", "Qp4aS6sW8oR0dX2z", "password"),
    Case("sig", "query", "sig=Qs5iG7nA9tU1rE3d", "Qs5iG7nA9tU1rE3d", "sig"),
    Case("amz-signature", "query", "X-Amz-Signature=Qx6aM8zS0iG2nA4t&X-Amz-Expires=60", "Qx6aM8zS0iG2nA4t"),
    Case("cas-ticket", "query", "ticket=ST-Qt7iC9kE1tX3yZ5w", "Qt7iC9kE1tX3yZ5w", "ticket"),
    Case("nonce-query", "query", "nonce=Qn8oN0cE2vB4nM6q", "Qn8oN0cE2vB4nM6q", "nonce"),
    Case("hmac-query", "query", "hmac=Qh9mA1cB3nM5qW7e&shop=x", "Qh9mA1cB3nM5qW7e", "hmac"),
    Case("phpsessid-query", "query", "PHPSESSID=Qs0eS2sI4dV6bN8m", "Qs0eS2sI4dV6bN8m", "phpsessid"),
    Case(
        "code-in-encoded-redirect",
        "query",
        "redirect=https%3A%2F%2Fh.example.com%2Fcb%3Fcode%3DQr1eD3iR5cT7oK9x",
        "Qr1eD3iR5cT7oK9x",
        "code",
    ),
    Case("pair-in-value", "query", "q=token=Qq2tO4kE6nA8sD0f", "Qq2tO4kE6nA8sD0f", "token"),
    Case("token-in-next", "query", "next=/reset?token=Qn3xT5rE7sE9tA1b", "Qn3xT5rE7sE9tA1b", "token"),
    Case("jwt-as-name", "query", f"{JWT_HEAD}.Qj4wT6sI8gN0aT2u", "Qj4wT6sI8gN0aT2u", "jwt"),
    Case(
        "refresh-token-query", "query", "refresh_token=Qf5rE7sH9tO1kE3n", "Qf5rE7sH9tO1kE3n", "refresh_token"
    ),
    Case(
        "client-secret-query", "query", "client_secret=Qc6lI8eN0tS2eC4r", "Qc6lI8eN0tS2eC4r", "client_secret"
    ),
    # -- form bodies --------------------------------------------------------------------------
    Case("login-form", "form", "username=ann&password=Fp1aS3sW5oR7dX9z", "Fp1aS3sW5oR7dX9z", "password"),
    Case(
        "token-exchange",
        "form",
        "grant_type=authorization_code&code=Fc2oD4eQ6wE8rT0y&redirect_uri=https://h/cb",
        "Fc2oD4eQ6wE8rT0y",
        "code",
    ),
    Case("client-secret-form", "form", "client_id=app&client_secret=Fs3eC5rE7tQ9wE1r", "Fs3eC5rE7tQ9wE1r"),
    Case(
        "refresh-form", "form", "grant_type=refresh_token&refresh_token=Fr4eF6rE8sH0tO2k", "Fr4eF6rE8sH0tO2k"
    ),
    Case("creds-form", "form", "creds=Fc5rE7dS9qW1eR3t", "Fc5rE7dS9qW1eR3t", "creds"),
    Case("pw-form", "form", "pw=Fp6wQ8wE0rT2yU4i", "Fp6wQ8wE0rT2yU4i", "pw"),
    Case("otp-form", "form", "otp=482913&user=ann", "482913", "otp"),
    Case("card-in-form", "form", "note=paid+with+4111+1111+1111+1111", "4111 1111 1111 1111", "card number"),
    Case("pair-in-form-value", "form", "data=password%3DFd7aT9aQ1wE3rT5y", "Fd7aT9aQ1wE3rT5y", "password"),
    # -- multipart bodies ---------------------------------------------------------------------
    Case(
        "multipart-quoted",
        "multipart",
        multipart('form-data; name="password"', "Mp1aS3sW5oR7dQ9z"),
        "Mp1aS3sW5oR7dQ9z",
    ),
    Case(
        "multipart-bare",
        "multipart",
        multipart("form-data; name=password", "Mp2aS4sW6oR8dQ0z"),
        "Mp2aS4sW6oR8dQ0z",
    ),
    Case(
        "multipart-upper",
        "multipart",
        multipart('form-data; NAME="Api_Key"', "Mk3pI5kE7yQ9wE1r"),
        "Mk3pI5kE7yQ9wE1r",
        "api_key",
    ),
    Case(
        "multipart-token",
        "multipart",
        multipart('form-data; name="token"', "Mt4oK6eN8qW0eR2t"),
        "Mt4oK6eN8qW0eR2t",
    ),
    Case(
        "multipart-header-in-note",
        "multipart",
        multipart('form-data; name="note"', "call with Authorization: Bearer Mb5eA7rE9rQ1wE3r"),
        "Mb5eA7rE9rQ1wE3r",
        "authorization",
    ),
    Case(
        "multipart-filename-first",
        "multipart",
        multipart('form-data; filename="creds.txt"; name="upload"', "Mf6iL8eC0oN2tE4n"),
        "Mf6iL8eC0oN2tE4n",
    ),
    # -- JSON bodies --------------------------------------------------------------------------
    Case(
        "json-password",
        "json",
        '{"user": "ann", "password": "Jp1aS3sW5oR7dQ9z"}',
        "Jp1aS3sW5oR7dQ9z",
        "password",
    ),
    Case(
        "json-nested-credentials",
        "json",
        '{"user": {"credentials": {"password": "Jc2rE4dQ6wE8rT0y"}}}',
        "Jc2rE4dQ6wE8rT0y",
        "credentials",
    ),
    Case("json-pw", "json", '{"pw": "Jp3wQ5wE7rT9yU1i"}', "Jp3wQ5wE7rT9yU1i", "pw"),
    Case(
        "json-header-pairs",
        "json",
        '{"headers": [["Authorization", "Bearer Jh4eA6dE8rQ0wE2r"], ["Accept", "*/*"]]}',
        "Jh4eA6dE8rQ0wE2r",
        "authorization",
    ),
    Case(
        "graphql-inline-argument",
        "json",
        '{"query": "mutation { login(user: \\"ann\\", password: \\"Jg5rA7pH9qL1wE3r\\") { token } }"}',
        "Jg5rA7pH9qL1wE3r",
        "password",
    ),
    Case(
        "graphql-variables",
        "json",
        '{"query": "mutation($p: String!) { login(password: $p) }", '
        '"variables": {"password": "Jv6aR8iA0bL2eS4x"}}',
        "Jv6aR8iA0bL2eS4x",
        "password",
    ),
    Case(
        "graphql-variables-as-string",
        "json",
        '{"variables": "{\\"password\\": \\"Jv7sT9rI1nG3vA5r\\"}"}',
        "Jv7sT9rI1nG3vA5r",
        "password",
    ),
    Case(
        "yaml-in-json",
        "json",
        '{"config": "db:\\n  password: Jy8aM0lQ2wE4rT6y\\n  host: db"}',
        "Jy8aM0lQ2wE4rT6y",
        "password",
    ),
    Case("json-card-field", "json", '{"items": [{"card_number": "4242424242424242"}]}', "4242424242424242"),
    Case(
        "json-card-in-text",
        "json",
        '{"note": "paid with card 5555 5555 5555 4444"}',
        "5555 5555 5555 4444",
        "card number",
    ),
    Case(
        "json-session-object",
        "json",
        '{"session": {"id": "Js9eS1sQ3wE5rT7y"}}',
        "Js9eS1sQ3wE5rT7y",
        "session",
    ),
    Case(
        "json-deep",
        "json",
        '{"a": {"b": {"c": {"d": {"e": {"f": {"api_key": "Jd0eE2pQ4wE6rT8y"}}}}}}}',
        "Jd0eE2pQ4wE6rT8y",
        "api_key",
    ),
    Case("json-jwt", "json", f'{{"id_token_hint": "{JWT_HEAD}.Jw1tS3iG5nA7tU9r"}}', "Jw1tS3iG5nA7tU9r"),
    Case(
        "json-lark-webhook",
        "json",
        '{"callback": "https://open.larksuite.com/open-apis/bot/v2/hook/Jl2aR4kW6eB8hO0o"}',
        "Jl2aR4kW6eB8hO0o",
        "webhook token",
    ),
    Case(
        "json-dsn",
        "json",
        '{"dsn": "postgres://app:Jd3sN5pA7sS9wD1x@db:5432/shop"}',
        "Jd3sN5pA7sS9wD1x",
        "dsn",
    ),
    Case(
        "json-private-key",
        "json",
        '{"private_key": "-----BEGIN RSA PRIVATE KEY-----\\nJk4eYbAsE64x\\n-----END RSA PRIVATE KEY-----"}',
        "Jk4eYbAsE64x",
    ),
    Case(
        "json-with-lone-surrogate",
        "json",
        '{"name": "\\ud800", "password": "Js5uR7rO9gA1tE3x"}',
        "Js5uR7rO9gA1tE3x",
        "password",
    ),
    Case(
        "json-cut-off",
        "json",
        '{"password": "Jt6rU8nC0aT2eD4x", "items": [1, 2',
        "Jt6rU8nC0aT2eD4x",
        "password",
    ),
    # -- text bodies --------------------------------------------------------------------------
    Case(
        "log-line",
        "text",
        "2026-01-01 ERROR login failed user=ann password=Tp1aS3sW5oR7dQ9z ip=203.0.113.7",
        "Tp1aS3sW5oR7dQ9z",
        "password",
    ),
    Case(
        "yaml",
        "text",
        "database:\n  host: db\n  password: Ty2aM4lQ6wE8rT0y\n",
        "Ty2aM4lQ6wE8rT0y",
        "password",
    ),
    Case("dotenv", "text", "DEBUG=1\nAPI_KEY=Te3nV5kE7yQ9wE1r\n", "Te3nV5kE7yQ9wE1r", "api_key"),
    Case("ini", "text", "[db]\npassword = Ti5nI7pA9sS1wD3x\n", "Ti5nI7pA9sS1wD3x", "password"),
    Case("cli-flag", "text", "started with --db-password=Tc6lI8fL0aG2qW4e", "Tc6lI8fL0aG2qW4e"),
    Case(
        "xml-element",
        "xml",
        "<login><user>ann</user><password>Tx6mL8pA0sS2wD4x</password></login>",
        "Tx6mL8pA0sS2wD4x",
        "password",
    ),
    Case(
        "soap-password",
        "xml",
        '<wsse:Password Type="PasswordText">Tx7wS9sE1cU3rI5t</wsse:Password>',
        "Tx7wS9sE1cU3rI5t",
        "wsse:password",
    ),
    Case(
        "xml-attribute",
        "xml",
        '<user password="Tx8aT0tR2iB4uT6e" name="ann"/>',
        "Tx8aT0tR2iB4uT6e",
        "password",
    ),
    Case(
        "pgp-key",
        "text",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGTp9gPgpK3y\n=Ab12\n"
        "-----END PGP PRIVATE KEY BLOCK-----",
        "lQOYBGTp9gPgpK3y",
        "private key",
    ),
    Case(
        "rsa-key",
        "text",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEArSa9x\n-----END RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEArSa9x",
        "private key",
    ),
    Case(
        "openssh-key-cut-off",
        "text",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEOpn",
        "b3BlbnNzaC1rZXktdjEOpn",
        "private key",
    ),
    Case(
        "slack-webhook",
        "text",
        "forwarding to https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/Ts9lA1cK3wE5bH7o",
        "Ts9lA1cK3wE5bH7o",
        "webhook token",
    ),
    Case(
        "discord-webhook",
        "text",
        "posting to https://discord.com/api/webhooks/112233445566/Td0iS2cO4rD6wE8b",
        "Td0iS2cO4rD6wE8b",
        "webhook token",
    ),
    Case(
        "feishu-webhook",
        "text",
        "posting to https://open.feishu.cn/open-apis/bot/v2/hook/Tf1eI3sH5uL7aR9k",
        "Tf1eI3sH5uL7aR9k",
        "webhook token",
    ),
    Case(
        "larkoffice-webhook",
        "text",
        "posting to https://open.larkoffice.com/open-apis/bot/v2/hook/Tl2aR4kO6fF8iC0e",
        "Tl2aR4kO6fF8iC0e",
        "webhook token",
    ),
    Case("github-token", "text", f"using {GITHUB_TOKEN} for the release", GITHUB_TOKEN[4:], "github token"),
    Case(
        "github-fine-grained",
        "text",
        "gh auth with github_pat_11ABCDEFG0_Tg4iT6hU8bP0aT2kQ4wE6rT8yU0iO2pA4sD6fG8hJ0kL2",
        "Tg4iT6hU8bP0aT2kQ4wE6rT8y",
        "github token",
    ),
    Case(
        "slack-token",
        "text",
        "slack client xoxb-112233445566-778899001122-Ts5lA7cK9bO1tT3o",
        "Ts5lA7cK9bO1tT3o",
    ),
    Case(
        "stripe-key",
        "text",
        "charging with sk_live_Ts6tR8iP0eK2eY4xAbCd failed",
        "Ts6tR8iP0eK2eY4xAbCd",
        "stripe key",
    ),
    Case(
        "aws-key", "text", "aws configure set id AKIAT7WS9AW1SK3EY5ZQ", "AKIAT7WS9AW1SK3EY5ZQ", "access key"
    ),
    Case("jwt-in-text", "text", f"session {JWT_HEAD}.Tj8wT0sI2gN4aT6u expired", "Tj8wT0sI2gN4aT6u", "jwt"),
    Case(
        "token-as-url-user",
        "text",
        "clone https://Tu9sE1rI3nF5oT7k@github.com/org/repo.git",
        "Tu9sE1rI3nF5oT7k",
        "credentials",
    ),
    Case("redis-password", "text", "redis://:Tr0eD2iS4pW6dQ8z@cache:6379/0", "Tr0eD2iS4pW6dQ8z", "password"),
    Case(
        "json-response",
        "response",
        '{"error": "ok", "access_token": "Ra1cC3eS5sT7oK9n", "token_type": "bearer"}',
        "Ra1cC3eS5sT7oK9n",
        "access_token",
    ),
    Case(
        "header-in-response",
        "response",
        "upstream 401: Authorization: Bearer Rb2eA4rE6rQ8wE0r",
        "Rb2eA4rE6rQ8wE0r",
        "authorization",
    ),
    # -- exception messages -------------------------------------------------------------------
    Case("harmless-name-first", "message", "error: token=Me1rR3oR5tO7kE9n", "Me1rR3oR5tO7kE9n", "token"),
    Case(
        "call-argument",
        "message",
        'could not connect(password="Mc2oN4nE6cT8pW0d")',
        "Mc2oN4nE6cT8pW0d",
        "password",
    ),
    Case(
        "sqlalchemy-parameters",
        "message",
        "(psycopg2.OperationalError) failed [SQL: SELECT 1] "
        "[parameters: {'user': 'app', 'password': 'Ms3qL5aL7cH9eM1y'}]",
        "Ms3qL5aL7cH9eM1y",
        "password",
    ),
    Case(
        "dict-repr",
        "message",
        "unexpected config {'api_key': 'Md4iC6tR8eP0rR2x', 'region': 'eu'}",
        "Md4iC6tR8eP0rR2x",
        "api_key",
    ),
    Case(
        "header-line",
        "message",
        "bad header Authorization: Bearer Mh5eA7dE9rQ1wE3r",
        "Mh5eA7dE9rQ1wE3r",
        "authorization",
    ),
    Case(
        "url-user-token",
        "message",
        "fetch failed for https://Mu6sE8rI0nF2oT4k@api.example.com/v1",
        "Mu6sE8rI0nF2oT4k",
        "credentials",
    ),
    Case(
        "dsn-in-message",
        "message",
        "cannot reach postgres://app:Mp7gP9aS1sW3dX5z@db/shop",
        "Mp7gP9aS1sW3dX5z",
    ),
    Case(
        "asgi-headers-repr",
        "message",
        "headers were [(b'host', b'shop'), (b'authorization', b'Bearer Ma8sG0iH2dR4sX6y')]",
        "Ma8sG0iH2dR4sX6y",
        "authorization",
    ),
    Case("graphql-in-message", "message", 'error in login(password: "Mg9qL1pA3sS5wD7x")', "Mg9qL1pA3sS5wD7x"),
    Case(
        "single-quoted", "message", "login failed password='Mq0uO2tE4dP6wQ8z'", "Mq0uO2tE4dP6wQ8z", "password"
    ),
    Case("spaced", "message", "login failed password:   Mw1sP3aC5eD7pW9x", "Mw1sP3aC5eD7pW9x", "password"),
    Case(
        "spaced-equals", "message", "login failed password = Mw2sE4qU6aL8sX0z", "Mw2sE4qU6aL8sX0z", "password"
    ),
    Case(
        "escaped-json",
        "message",
        'payload {\\"password\\": \\"Me2sC4aP6eD8jS0n\\"}',
        "Me2sC4aP6eD8jS0n",
        "password",
    ),
    Case(
        "access-token-in-url",
        "message",
        "redirect to https://h.example.com/cb?access_token=Mr3eD5iR7eC9tT1k&expires=3600",
        "Mr3eD5iR7eC9tT1k",
        "access_token",
    ),
    Case(
        "headers-repr",
        "message",
        "Headers({'cookie': 'sessionid=Mk4oO6kI8eS0iD2x'})",
        "Mk4oO6kI8eS0iD2x",
        "cookie",
    ),
    Case("pair-after-pair", "message", "q=token=Mq5tO7kE9nQ1wE3r rejected", "Mq5tO7kE9nQ1wE3r", "token"),
    Case(
        "webhook-in-message",
        "message",
        "timeout calling https://open.larksuite.com/open-apis/bot/v2/hook/Ml6aR8kH0oO2kT4k",
        "Ml6aR8kH0oO2kT4k",
        "webhook token",
    ),
    Case(
        "slack-user-token",
        "message",
        "auth failed for xoxp-1122334455-6677889900-Mx7oX9pT1oK3eN5s",
        "Mx7oX9pT1oK3eN5s",
        "slack token",
    ),
    Case("phpsessid", "message", "PHPSESSID=Mp8hP0sE2sS4iD6x expired", "Mp8hP0sE2sS4iD6x", "phpsessid"),
    Case("nonce", "message", "signed with nonce=Mn9oN1cE3vB5nM7q", "Mn9oN1cE3vB5nM7q", "nonce"),
    Case("xml-in-message", "message", "<password>Mx1mL3pA5sS7wD9x</password> rejected", "Mx1mL3pA5sS7wD9x"),
    Case("stripe-test-key", "message", "no such key rk_test_Ms2tR4iP6eK8eY0x1234", "Ms2tR4iP6eK8eY0x1234"),
    # -- traceback source lines -----------------------------------------------------------------
    Case(
        "connect-call",
        "traceback",
        '    conn = connect(host="db", password="Tb1pA3sS5wO7rD9x")',
        "Tb1pA3sS5wO7rD9x",
        "password",
    ),
    Case(
        "client-call",
        "traceback",
        '    client = Client(api_key="Tb2aP4iK6eY8qW0e")',
        "Tb2aP4iK6eY8qW0e",
        "api_key",
    ),
    Case("assignment", "traceback", '    token = "Tb3tO5kE7nQ9wE1r"', "Tb3tO5kE7nQ9wE1r", "token"),
    Case(
        "headers-literal",
        "traceback",
        '    headers = {"Authorization": "Bearer Tb4eA6rE8rQ0wE2r"}',
        "Tb4eA6rE8rQ0wE2r",
        "authorization",
    ),
    Case(
        "key-in-url-literal",
        "traceback",
        '    requests.get(f"https://api.example.com/?key=Tb5kE7yQ9wE1rT3y")',
        "Tb5kE7yQ9wE1rT3y",
        "key",
    ),
    Case(
        "engine-url",
        "traceback",
        '    engine = create_engine("postgresql://app:Tb6pG8pA0sS2wD4x@db/shop")',
        "Tb6pG8pA0sS2wD4x",
        "password",
    ),
    Case(
        "passwd-argument",
        "traceback",
        '    login(user, passwd="Tb7pW9sS1wD3xQ5z")',
        "Tb7pW9sS1wD3xQ5z",
        "passwd",
    ),
    # -- path parameters --------------------------------------------------------------------------
    Case("reset-token", "path:/reset/{token}", "/reset/Pr1eS3eT5tO7kE9n", "Pr1eS3eT5tO7kE9n", "token"),
    Case(
        "mounted-reset", "path:/v1/reset/{token}", "/v1/reset/Pv2rE4sE6tT8oK0n", "Pv2rE4sE6tT8oK0n", "token"
    ),
    Case(
        "session-segment",
        "path:/users/{user_id}/sessions/{session_id}",
        "/users/42/sessions/Ps3eS5sI7oN9iD1x",
        "Ps3eS5sI7oN9iD1x",
        "session_id",
    ),
    Case(
        "signature-path",
        "path:/files/{signature:path}",
        "/files/a/b/Pf4iL6eS8iG0nA2t",
        "Pf4iL6eS8iG0nA2t",
        "signature",
    ),
    Case("hook-secret", "path:/hooks/{secret}", "/hooks/Ph5oO7kS9eC1rE3t", "Ph5oO7kS9eC1rE3t", "secret"),
    Case("api-key-segment", "path:/api/{api_key}/orders", "/api/Pa6pI8kE0yQ2wE4r/orders", "Pa6pI8kE0yQ2wE4r"),
    Case(
        "jsessionid-path-parameter",
        "path:/callback",
        "/callback;jsessionid=Pj7sE9sS1iO3nI5d",
        "Pj7sE9sS1iO3nI5d",
        "jsessionid",
    ),
]

VISIBLE = [
    Case("status-and-code", "json", '{"status_code": 500, "code": 404, "author_id": 7}', '"code": 404'),
    Case("status-code", "json", '{"status_code": 500, "code": 404, "author_id": 7}', '"status_code": 500'),
    Case("author-id", "json", '{"status_code": 500, "code": 404, "author_id": 7}', '"author_id": 7'),
    Case("keyword", "json", '{"keyword": "monkey", "content_type": "text/plain"}', '"keyword": "monkey"'),
    Case(
        "error-code",
        "json",
        '{"error": {"code": "card_declined", "message": "Your card was declined."}}',
        "Your card was declined.",
    ),
    Case("content-type", "header:Content-Type", "application/json", "content-type: application/json"),
    Case(
        "user-agent",
        "header:User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "Mozilla/5.0 (X11; Linux x86_64)",
    ),
    Case("accept-encoding", "header:Accept-Encoding", "gzip, deflate", "gzip, deflate"),
    Case("request-id", "header:X-Request-ID", "3f1c2d9e8b7a4c6d", "3f1c2d9e8b7a4c6d"),
    Case("query", "query", "page=2&sort=desc&author_id=7", "author_id=7"),
    Case("query-keyword", "query", "keyword=monkey&state=xyz&scope=read", "keyword=monkey"),
    Case("query-scope", "query", "keyword=monkey&state=xyz&scope=read", "scope=read"),
    Case("form", "form", "user=ann&plan=pro&country=NL", "plan=pro"),
    Case(
        "prose-token",
        "message",
        "token validation failed for user ann",
        "token validation failed for user ann",
    ),
    Case("quoted-key", "message", "missing key 'token' in payload", "missing key 'token' in payload"),
    Case("prose-password", "message", "the password was wrong for ann", "the password was wrong for ann"),
    Case("prose-session", "message", "session expired after 30 minutes", "session expired after 30 minutes"),
    Case("int-literal", "message", "invalid literal for int() with base 10: 'abc'", "with base 10: 'abc'"),
    Case(
        "numbers",
        "message",
        "order 4111111111111112 failed at 1700000000000",
        "4111111111111112 failed at 1700000000000",
    ),
    Case("redis-url", "message", "connecting to redis://localhost:6379/0", "redis://localhost:6379/0"),
    Case(
        "docs-url",
        "message",
        "see https://docs.example.com/errors?id=42#retry",
        "https://docs.example.com/errors?id=42#retry",
    ),
    Case("comparison", "message", "if token == expected: raise", "if token == expected: raise"),
    Case(
        "publishable-key",
        "message",
        "pk_live_51HqLyjWDarjtT1zdp7dc is public",
        "pk_live_51HqLyjWDarjtT1zdp7dc",
    ),
    Case(
        "ssh-url",
        "message",
        "ssh://git@github.com/org/repo.git not found",
        "ssh://git@github.com/org/repo.git",
    ),
    Case("email", "message", "ann@example.com has no order 42", "ann@example.com has no order 42"),
    Case("certificate", "message", "expected -----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----"),
    Case(
        "uuid",
        "message",
        "request 3f1c2d9e-8b7a-4c6d-9e8b-7a4c6d3f1c2d",
        "3f1c2d9e-8b7a-4c6d-9e8b-7a4c6d3f1c2d",
    ),
    Case(
        "exception-name",
        "message",
        "InvalidSignatureError: Signature verification failed",
        "Signature verification failed",
    ),
    Case("key-error", "traceback", "KeyError: 'password'", "KeyError: 'password'"),
    Case("bearer-prefix", "message", "missing Bearer prefix", "missing Bearer prefix"),
    Case("code-version", "message", "status_code=500 code_version=3", "status_code=500 code_version=3"),
    Case("status-lines", "text", "status: 500\nerror: upstream timeout\nretry: 3", "error: upstream timeout"),
    Case("content-type-line", "text", "Content-Type: text/plain", "Content-Type: text/plain"),
    Case("item-path", "path:/items/{item_id}", "/items/42", "/items/42"),
    Case("order-path", "path:/orders/{order_id}/split", "/orders/42/split", "/orders/42/split"),
    Case(
        "source-line",
        "traceback",
        "    shares = split_total(order.total, parts=body.quantity)",
        "parts=body.quantity",
    ),
    Case(
        "file-line",
        "traceback",
        '  File "/srv/shop/orders/api.py", line 88, in split_order',
        "line 88, in split_order",
    ),
]

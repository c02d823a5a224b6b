"""`lark-alert routes` prints the table and explains a match; `lark-alert check` checks every route."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from lark_alert_middleware.cli import main

from .servers import REPO

WriteRoutes = Callable[[str], Path]
ROUTES = f"""
    [[route]]
    name = "drop-scanners"
    match = {{ route = "<unmatched>", status = "404" }}
    drop = true

    [[route]]
    name = "payments"
    match = {{ route = "/payments/*" }}
    webhook_url_env = "PAYMENTS_LARK_WEBHOOK"
    webhook_secret_env = "PAYMENTS_LARK_SECRET"
    mention = ["ou_3f1c2d9e"]
    continue = true

    [[route]]
    name = "network"
    match = {{ exception = "OSError" }}
    webhook_url_env = "ONCALL_LARK_WEBHOOK"

    [[route]]
    name = "on-call"
    match = {{ status = "500-599" }}
    webhook_url_env = "ONCALL_LARK_WEBHOOK"
    mention = ["all"]
    mention_after = 20
    rate_limit = 300

    [[route]]
    name = "quiet"
    match = {{}}
    template = "{REPO / "examples" / "compact_card.json.j2"}"
"""


@pytest.fixture
def routes_file(write_routes: WriteRoutes, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_routes(ROUTES)
    monkeypatch.setenv("LARK_ALERT_ROUTES", str(path))
    monkeypatch.setenv("LARK_WEBHOOK_URL", "https://open.larksuite.com/open-apis/bot/v2/hook/quiet-t0k3n")
    monkeypatch.setenv("PAYMENTS_LARK_WEBHOOK", "https://open.larksuite.com/open-apis/bot/v2/hook/pay-t0k3n")
    monkeypatch.setenv("PAYMENTS_LARK_SECRET", "pay-s3cret")
    monkeypatch.setenv("ONCALL_LARK_WEBHOOK", "https://open.feishu.cn/open-apis/bot/v2/hook/oncall-t0k3n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def row(out: str, name: str) -> list[str]:
    """The cells of the table row of route `name` (cells are separated by two spaces or more)."""
    [line] = [line for line in out.splitlines() if line.split()[1:2] == [name]]
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


def test_routes_prints_the_table_with_secrets_masked(
    routes_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "routes")
    assert code == 0
    assert row(out, "drop-scanners") == [
        "1",
        "drop-scanners",
        "status=404 route=<unmatched>",
        "drop",
        "-",
        "-",
        "-",
        "-",
    ]
    assert row(out, "payments") == [
        "2",
        "payments",
        "route=/payments/*",
        "continue",
        "60 s",
        "ou_3f1c2d9e",
        "built-in",
        "PAYMENTS_LARK_WEBHOOK: https://open.larksuite.com/open-apis/bot/v2/hook/*** (signed)",
    ]
    assert row(out, "on-call")[3:6] == ["stop", "300 s", "all (after 20)"]
    assert row(out, "quiet")[2] == "(any error)" and row(out, "quiet")[6].endswith("compact_card.json.j2")
    assert row(out, "quiet")[7] == "LARK_WEBHOOK_URL: https://open.larksuite.com/open-apis/bot/v2/hook/***"
    assert row(out, "(default)")[0] == "-"
    assert "t0k3n" not in out and "s3cret" not in out


def test_routes_says_which_routes_an_error_matches_and_why_the_others_do_not(
    routes_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "routes", "--status", "500", "--method", "POST", "--path", "/payments/7")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "An error: 500 POST /payments/7 (route /payments/7), source http, exception -"
    assert [line.split(None, 2)[1:] for line in lines[1:6]] == [
        ["drop-scanners", "status 500 is not 404"],
        ["payments", "matches, and goes on (continue = true)"],
        ["network", "it has no exception"],
        ["on-call", "matches"],
        ["quiet", "not reached: on-call matched and ends the matching"],
    ]
    assert lines[-1] == "Cards go to: payments, on-call"


def test_routes_matches_an_exception_along_its_mro(
    routes_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(
        capsys, "routes", "--status", "502", "--path", "/orders/1", "--exception", "ConnectionError"
    )
    assert "network        matches" in out
    assert out.splitlines()[-1] == "Cards go to: network"


def test_routes_says_when_an_error_goes_nowhere(
    routes_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "routes", "--status", "404", "--path", "/wp-login.php", "--route", "<unmatched>")
    assert "drop-scanners  matches: drop, nothing is sent" in out
    assert out.splitlines()[-1] == "Cards go nowhere: the error is routed away."


def test_routes_without_routes_names_the_default_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "routes", "--status", "500")
    assert code == 0
    assert "No routes are configured (LARK_ALERT_ROUTES)" in out
    assert out.splitlines()[-1] == "Cards go to: default"


def test_check_lists_every_route_and_where_it_posts(
    routes_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "check")
    assert code == 0, err
    assert "route drop-scanners    drops what it matches" in out
    assert (
        "route payments         posts to PAYMENTS_LARK_WEBHOOK: "
        "https://open.larksuite.com/open-apis/bot/v2/hook/*** (signed)"
    ) in out
    assert "route quiet            posts to LARK_WEBHOOK_URL" in out
    assert "t0k3n" not in out + err and "s3cret" not in out + err


def test_check_names_the_route_whose_webhook_lark_would_refuse(
    routes_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ONCALL_LARK_WEBHOOK", "https://open.feishu.cn/open-apis/bot/v2/oncall-t0k3n")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "problem: LARK_ALERT_ROUTES: route 'network': ONCALL_LARK_WEBHOOK: the path must be" in err
    assert "t0k3n" not in err


def test_check_fails_on_a_bad_route_naming_the_route_and_the_key(
    routes_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ONCALL_LARK_WEBHOOK")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "route 'network' (#3 in" in err and "webhook_url_env: ONCALL_LARK_WEBHOOK is not set" in err
    assert "route 'on-call' (#4 in" in err


def test_check_renders_every_route_template(
    write_routes: WriteRoutes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_routes('[[route]]\nname = "quiet"\ntemplate = "card.json.j2"\n')
    (path.parent / "card.json.j2").write_text('{"header": {}}')
    monkeypatch.setenv("LARK_ALERT_ROUTES", str(path))
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "problem: LARK_ALERT_ROUTES: route 'quiet': template: " in err
    assert "does not render a valid card" in err


def test_the_readme_shows_what_lark_alert_routes_prints_for_its_example(
    write_routes: WriteRoutes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Routes: the right group for each error")[1].split("\n## ")[0]
    example = section.split("```toml\n")[1].split("```")[0]
    shown = section.split("```text\n")[1].split("```")[0]
    path = write_routes(example)
    (path.parent / "cards").mkdir()
    (path.parent / "cards" / "compact.json.j2").write_text(
        (REPO / "examples" / "compact_card.json.j2").read_text()
    )
    monkeypatch.chdir(path.parent)
    monkeypatch.setenv("LARK_ALERT_ROUTES", path.name)
    for variable in ("LARK_WEBHOOK_URL", "PAYMENTS_LARK_WEBHOOK", "ONCALL_LARK_WEBHOOK"):
        monkeypatch.setenv(variable, "https://open.larksuite.com/open-apis/bot/v2/hook/t0k3n")
    monkeypatch.setenv("PAYMENTS_LARK_SECRET", "s3cret")
    for command in shown.split("$ lark-alert ")[1:]:
        arguments, _, expected = command.partition("\n")
        code, out, _ = run(capsys, *shlex.split(arguments))
        assert code == 0
        assert out.strip() == expected.strip(), (
            "README.md's routes output is stale: paste `lark-alert routes`"
        )

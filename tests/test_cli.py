"""`lark-alert check | send-test | preview`: each says in words what is right or wrong; exits 0, 1 or 2."""

from __future__ import annotations

import html
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lark_alert_middleware.cli import main
from lark_alert_middleware.testing import LarkReceiver

from .conftest import SHARED_REDIS_URL, card_full_title, card_title, free_port

MakeReceiver = Callable[..., LarkReceiver]
TOKEN = "tok-3f9a1c"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def webhook(make_lark_receiver: MakeReceiver, monkeypatch: pytest.MonkeyPatch) -> LarkReceiver:
    """A receiver expecting the secret "right", configured in the environment with that secret."""
    receiver = make_lark_receiver(secret="right", token=TOKEN)
    monkeypatch.setenv("LARK_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("LARK_WEBHOOK_SECRET", "right")
    return receiver


def test_check_describes_a_good_configuration_without_revealing_secrets(
    webhook: LarkReceiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", SHARED_REDIS_URL)
    code, out, err = run(capsys, "check")
    assert code == 0, err
    assert f"127.0.0.1:{webhook.port}/open-apis/bot/v2/hook/***" in out
    assert "set: cards are signed" in out
    assert "answered PING: dedup is fleet-wide" in out
    assert out.rstrip().endswith("configuration OK")
    assert TOKEN not in out + err and "right" not in out + err
    assert webhook.requests == []  # check never posts


def test_check_names_the_variable_that_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_ALERT_STATUS_CODES", "500-700")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "LARK_ALERT_STATUS_CODES (status_codes=): 500-700 is not a range of HTTP statuses" in err


def test_check_reports_a_redis_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    code, out, err = run(capsys, "check")
    assert code == 1
    assert f"problem: REDIS_URL: redis://:***@127.0.0.1:{port}/0 did not answer PING" in err
    assert "hunter2" not in out + err


def test_check_masks_a_redis_password_given_in_the_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    socket = tmp_path / "redis.sock"  # for unix:// sockets, ?password= is how redis-py takes one
    monkeypatch.setenv("REDIS_URL", f"unix://{socket}?password=hunter2&db=0")
    code, out, err = run(capsys, "check")
    assert code == 1
    assert f"REDIS_URL              unix://{socket}?password=***&db=0\n" in out
    assert f"problem: REDIS_URL: unix://{socket}?password=***&db=0 did not answer PING" in err
    assert "hunter2" not in out + err


def test_check_and_send_test_mask_credentials_in_the_webhook_url(
    webhook: LarkReceiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", f"http://ops:hunter2@127.0.0.1:{webhook.port}/hook?token={TOKEN}")
    shown = f"http://ops:***@127.0.0.1:{webhook.port}/***?token=***"
    code, out, _ = run(capsys, "check")
    assert code == 0 and f"LARK_WEBHOOK_URL       {shown}" in out
    code, out, err = run(capsys, "send-test")  # refused by the receiver (wrong path); printed is what counts
    assert f"Posting a sample card to {shown} (signed) ..." in out
    assert "hunter2" not in out + err and TOKEN not in out + err


def test_check_refuses_a_lark_url_that_is_not_a_bot_webhook(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", "https://open.feishu.cn/open-apis/bot/hook/abc")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "the path must be /open-apis/bot/v2/hook/<token>" in err


def test_check_refuses_a_webhook_that_is_not_https_on_a_lark_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", "http://169.254.169.254/latest/meta-data/")
    code, out, err = run(capsys, "check")
    assert code == 1 and "configuration OK" not in out
    assert "LARK_WEBHOOK_URL (webhook_url=): http://169.254.169.254 is not https:// on a Lark" in err
    assert "or add the host to LARK_ALERT_ALLOWED_WEBHOOK_HOSTS for a relay" in err


def test_check_accepts_a_relay_listed_in_the_allowed_hosts_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", f"https://relay.example.com/lark?token={TOKEN}")
    monkeypatch.setenv("LARK_ALERT_ALLOWED_WEBHOOK_HOSTS", "relay.example.com")
    code, out, err = run(capsys, "check")
    assert code == 0, err
    assert (
        "https://relay.example.com/***?token=*** (a relay, allowed by LARK_ALERT_ALLOWED_WEBHOOK_HOSTS)"
        in out
    )
    assert "LARK_ALERT_ALLOWED_WEBHOOK_HOSTS  relay.example.com (besides Lark's hosts and loopback)" in out
    assert out.rstrip().endswith("configuration OK") and TOKEN not in out


def test_check_reports_a_template_that_does_not_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "card.json.j2"
    template.write_text('{"elements": [{"tag": "markdown", "content": "{{ no_such_thing }}"}]}')
    monkeypatch.setenv("LARK_ALERT_TEMPLATE", str(template))
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "LARK_ALERT_TEMPLATE (template=)" in err and "no_such_thing" in err


def test_send_test_posts_a_sample_card_and_says_lark_accepted_it(
    webhook: LarkReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "send-test")
    assert code == 0, err
    [card] = webhook.cards
    assert card_title(card) == "500 POST /orders/{order_id}/split"
    assert "app (test card from lark-alert send-test)" in html.unescape(json.dumps(card))
    assert "Lark accepted the card: success (HTTP 200, code 0)" in out
    assert "(signed)" in out and TOKEN not in out


def test_send_test_with_a_wrong_secret_explains_the_signature_error(
    webhook: LarkReceiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_SECRET", "wrong")
    code, _, err = run(capsys, "send-test")
    assert code == 1
    assert "Lark refused the card: sign match fail" in err
    assert "(HTTP 200, code 19021): signature rejected: LARK_WEBHOOK_SECRET must be the bot's" in err
    assert webhook.cards == []


def test_send_test_without_the_required_keyword_says_which_variable_to_set(
    make_lark_receiver: MakeReceiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", make_lark_receiver(keyword="ALERT").url)
    code, _, err = run(capsys, "send-test")
    assert code == 1
    assert "code 19024" in err and "set LARK_ALERT_KEYWORD" in err


def test_send_test_to_an_unreachable_webhook_says_it_could_not_reach_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("LARK_WEBHOOK_URL", f"http://127.0.0.1:{port}/open-apis/bot/v2/hook/{TOKEN}")
    code, _, err = run(capsys, "send-test")
    assert code == 1
    hidden = f"http://127.0.0.1:{port}/open-apis/bot/v2/hook/***"
    assert f"could not reach {hidden}: network error (ConnectError)" in err
    assert TOKEN not in err


def test_send_test_gives_up_on_a_webhook_that_never_answers(
    webhook: LarkReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook.fail_next("hang")
    code, _, err = run(capsys, "send-test", "--timeout", "0.5")
    assert code == 1
    assert "timed out (ReadTimeout)" in err


def test_send_test_needs_a_webhook_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "send-test")
    assert code == 1
    assert "LARK_WEBHOOK_URL is not set" in err


def test_preview_prints_the_sample_card_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_ALERT_SERVICE", "orders")
    code, out, _ = run(capsys, "preview")
    assert code == 0
    card = json.loads(out)
    assert card_full_title(card) == "🔴 500 POST /orders/{order_id}/split · orders · production"


@pytest.mark.parametrize(
    ("kind", "title"),
    [
        ("new", "🔴 🆕 500 POST /orders/{order_id}/split · orders · production"),
        ("back", "🔴 🔁 500 POST /orders/{order_id}/split · orders · production"),
        ("repeated", "🔴 500 POST /orders/{order_id}/split · orders · production"),
        (
            "escalation",
            "🔴 📈 500 POST /orders/{order_id}/split: now 1,042 times in 4 min · orders · production",
        ),
        ("recovered", "🟢 500 POST /orders/{order_id}/split: quiet for 10 min · orders · production"),
        ("summary", "📋 Daily summary: 1,551 errors · orders · production"),
    ],
)
def test_preview_prints_a_sample_of_each_kind_of_card(
    kind: str, title: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_ALERT_SERVICE", "orders")
    code, out, _ = run(capsys, "preview", "--kind", kind)
    assert code == 0
    assert card_full_title(json.loads(out)) == title


def test_the_readme_shows_the_default_card_as_preview_prints_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("LARK_") or name in ("SEQ_URL", "REDIS_URL"):
            monkeypatch.delenv(name)
    code, out, _ = run(capsys, "preview")
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    shown = readme.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert code == 0
    assert json.loads(shown) == json.loads(out), "README.md's card JSON is stale: paste `lark-alert preview`"


EVENT = {
    "method": "GET",
    "path": "/items/7",
    "route": "/items/{item_id}",
    "status_code": 404,
    "response_body": {"detail": "item 7 not found"},
}


def test_preview_renders_a_given_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(EVENT))
    code, out, _ = run(capsys, "preview", "--event", str(event_file))
    assert code == 0
    card = json.loads(out)
    assert (card_title(card), card["header"]["template"]) == (
        "404 GET /items/{item_id}",
        "orange",
    )
    assert "item 7 not found" in out


def test_preview_reads_an_event_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(EVENT)))
    code, out, _ = run(capsys, "preview", "--event", "-")
    assert code == 0 and card_title(json.loads(out)) == "404 GET /items/{item_id}"


def test_preview_names_what_is_wrong_with_an_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text('{"method": "GET", "path": "/", "status_code": "four hundred"}')
    code, _, err = run(capsys, "preview", "--event", str(event_file))
    assert code == 1
    assert f"{event_file}: invalid event: status_code: Input should be a valid integer" in err


def test_preview_writes_an_html_page_with_the_inbox_renderer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "card.html"
    code, out, _ = run(capsys, "preview", "--html", str(page))
    assert code == 0 and f"wrote {page}" in out
    written = page.read_text()
    assert written.startswith("<!doctype html>")
    assert '<article class="lark-card"><header class="lark-card-header" style="background:#f54a45' in written
    assert "500 POST /orders/{order_id}/split" in written


@pytest.mark.parametrize("argv", [[], ["nope"], ["preview", "--bogus"]])
def test_usage_errors_exit_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: lark-alert" in capsys.readouterr().err


def test_the_lark_alert_command_and_python_m_run_the_same_cli() -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LARK_")}
    script = Path(sys.executable).with_name("lark-alert")
    for command in ([str(script), "check"], [sys.executable, "-m", "lark_alert_middleware", "check"]):
        finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr
        assert "configuration OK" in finished.stdout

"""`hpotui notify --test`: one message to each URL, a line per URL, exit 1 if any failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_sink import JsonSink, refused_url

from hpotui.cli import main

pytest.importorskip("apprise", reason="apprise is not installed (pip install -e '.[notify]')")
ROOT = Path(__file__).resolve().parents[2]


def _config(workspace: Path, urls: list[str]) -> Path:
    path = workspace / "c.toml"
    listed = ", ".join(f'"{u}"' for u in urls)
    path.write_text(
        (ROOT / "configs" / "tiny.toml").read_text() + f"\n[notify]\nurls = [{listed}]\n"
    )
    return path


def test_every_url_is_tried_and_the_failed_one_named(
    workspace: Path, sink: JsonSink, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = refused_url()
    code = main(["notify", "--test", str(_config(workspace, [sink.url(), bad]))])
    out, err = capsys.readouterr()
    assert code == 1
    assert "URL 1 (json://***): sent" in out
    assert "URL 2 (json://***): FAILED" in out
    assert "1 of 2 URL(s) failed" in err
    for secret in ("s3cretpass", "alice", "private-token-path", str(sink.port)):
        assert secret not in out + err
    [message] = sink.wait_for(1)
    assert message["title"] == "hpotui tiny: test message"
    assert "campaign_done" in message["message"]


def test_all_sent_is_exit_0(
    workspace: Path, sink: JsonSink, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notify", "--test", str(_config(workspace, [sink.url()]))]) == 0
    assert "ok: all 1 URL(s) took the message" in capsys.readouterr().out


def test_env_urls_alone_and_an_unknown_scheme(
    workspace: Path,
    sink: JsonSink,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HPOTUI_NOTIFY_URLS", f"nosuchservice://abc/def {sink.url()}")
    code = main(["notify", "--test", str(ROOT / "configs" / "tiny.toml")])
    out = capsys.readouterr().out
    assert code == 1
    assert "URL 1 (nosuchservice://***): FAILED: apprise does not understand this URL" in out
    assert "URL 2 (json://***): sent" in out


def test_nothing_configured_says_how(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPOTUI_NOTIFY_URLS", raising=False)
    assert main(["notify", "--test", str(ROOT / "configs" / "tiny.toml")]) == 2
    err = capsys.readouterr().err
    assert "no notification URL configured" in err and "HPOTUI_NOTIFY_URLS" in err


def test_without_test_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify"]) == 2
    assert "hpotui notify --test" in capsys.readouterr().err

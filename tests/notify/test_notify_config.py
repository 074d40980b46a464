"""The [notify] table: accepted values, and errors that name the line but never a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.campaign.config import load_campaign
from engine.errors import UserErrors
from engine.notify.config import EVENTS, label, mask_notify_url, scrub

BASE = """[campaign]
name = "t"

[defaults.params]
learning_rate = { log_uniform = [1e-4, 1e-3] }

[grid]
budgets = ["10K"]
horizons = [1]

[notify]
"""


def _load(tmp_path: Path, notify: str) -> object:
    path = tmp_path / "c.toml"
    path.write_text(BASE + notify)
    return load_campaign(path)


def _errors(tmp_path: Path, notify: str) -> list[str]:
    with pytest.raises(UserErrors) as caught:
        _load(tmp_path, notify)
    return caught.value.lines()


def test_urls_and_events(tmp_path: Path) -> None:
    campaign = _load(tmp_path, 'urls = ["ntfy://topic", "json://h/x"]\non = ["campaign_done"]\n')
    assert campaign.notify.urls == ("ntfy://topic", "json://h/x")  # type: ignore[attr-defined]
    assert campaign.notify.on == ("campaign_done",)  # type: ignore[attr-defined]


def test_defaults_every_event_and_no_url(tmp_path: Path) -> None:
    campaign = _load(tmp_path, "")
    assert campaign.notify.urls == () and campaign.notify.on == EVENTS  # type: ignore[attr-defined]


def test_an_empty_on_turns_every_event_off(tmp_path: Path) -> None:
    assert _load(tmp_path, 'urls = ["ntfy://t"]\non = []\n').notify.on == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ('urls = "tgram://bot:SECRET/1"\n', ":12: notify.urls: expected a list of URL strings"),
        ('urls = ["tgram://bot:SECRET/1", "SECRET"]\n', ":12: notify.urls: item 2 is not a URL"),
        ('on = ["campaign_dne"]\n', "did you mean 'campaign_done'?"),
        ('url = ["tgram://bot:SECRET/1"]\n', ":12: notify.url: unknown key (did you mean urls?)"),
    ],
)
def test_bad_values_name_the_line_and_never_quote_a_url(
    tmp_path: Path, notify: str, expected: str
) -> None:
    [line] = _errors(tmp_path, notify)
    assert expected in line
    assert "SECRET" not in line


def test_masking_and_scrubbing() -> None:
    url = "tgram://123456:AAbbCCdd/98765"
    assert mask_notify_url(url) == "tgram://***"
    assert label(1, url) == "URL 2 (tgram://***)"
    assert scrub("error sending to 98765 with AAbbCCdd", [url]) == "error sending to *** with ***"

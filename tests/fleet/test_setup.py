"""The storage password never survives the node's scrubbing of logs and messages."""

from __future__ import annotations

from engine.fleet.setup import Scrubber


def test_scrubber_masks_the_url_and_the_bare_password() -> None:
    url = "postgresql+psycopg://hpo:p%40ss-w0rd@db:5432/hpotui"
    scrub = Scrubber(url)
    text = f"connect {url} failed; password p@ss-w0rd or p%40ss-w0rd rejected"
    assert scrub(text) == (
        "connect postgresql+psycopg://hpo:***@db:5432/hpotui failed; password *** or *** rejected"
    )


def test_scrubber_query_password_and_no_password() -> None:
    assert Scrubber("postgresql://db/hpo?user=a&password=sekrit9")("x sekrit9 y") == "x *** y"
    plain = Scrubber("postgresql://hpo@db/hpotui")  # ~/.pgpass: nothing to hide
    assert plain("hpo@db fine") == "hpo@db fine"

"""Split facts: sizes, dates and label rates as the windows hold them, and drift warnings."""

from __future__ import annotations

import pytest
import torch
from market_data import random_ohlcv

from engine.dataset.spec import DataSpec, LabelSpec, SplitSpec
from engine.dataset.splits import DRIFT_LIMIT, SplitFacts, SplitInfo, label_drift, split_facts
from engine.dataset.windows import prepare_data


def spec(mode: str = "contiguous", horizon: int = 1) -> DataSpec:
    split = SplitSpec(mode=mode, n_chunks=2, min_val_windows=20)
    # tier ohlcv: the random frames hold prices only (no look-back to restart in chunks)
    return DataSpec(tier="ohlcv", context_len=20, labels=LabelSpec(horizon=horizon), split=split)


@pytest.mark.parametrize("mode", ["contiguous", "chunks"])
def test_facts_are_what_the_prepared_windows_hold(mode: str) -> None:
    frame = random_ohlcv(900, 3, start="2001-01-01", wick=0.005)
    facts = split_facts(frame, spec(mode, 3))
    data = prepare_data(frame, spec(mode, 3), torch.device("cpu"))
    assert data.facts == facts and list(facts.splits) == data.report
    for info, windows in zip(facts.splits, (data.train, data.val, data.test), strict=True):
        assert info.size == len(windows)
        assert info.label_rate == pytest.approx(float(windows.y.mean()))
        assert info.start == frame.index[windows.days[0]].date().isoformat()
        assert info.end == frame.index[windows.days[-1]].date().isoformat()
    assert facts.gap == 3 + 20 - 1
    assert facts.get("val").blocks == (1 if mode == "contiguous" else 2)
    assert facts.to_dict()["splits"][0]["name"] == "train"


def facts(train: float, val: float, test: float) -> SplitFacts:
    return SplitFacts(
        tuple(
            SplitInfo(name, 100, "2001-01-01", "2002-01-01", rate, 1)
            for name, rate in (("train", train), ("val", val), ("test", test))
        ),
        gap=10,
    )


def test_drift_is_relative_to_the_rarer_class() -> None:
    assert label_drift(0.25, 0.20) == pytest.approx(-0.2)
    assert label_drift(0.80, 0.70) == pytest.approx(-0.5)  # 0.1 of a 0.2 minority
    assert label_drift(0.5, 0.6) == pytest.approx(0.2)


def test_drift_warning_names_the_split_rates_and_limit() -> None:
    # the demo's h1 data: train 0.249, validation 0.151, test 0.119
    warnings = facts(0.249, 0.151, 0.119).drifts()
    assert len(warnings) == 2
    assert "val 0.151 vs train 0.249 (-39%" in warnings[0] and f"{DRIFT_LIMIT:.0%}" in warnings[0]
    assert "test 0.119" in warnings[1]


def test_no_warning_within_the_limit_or_for_an_empty_split() -> None:
    assert facts(0.25, 0.22, 0.28).drifts() == []
    empty = SplitFacts(
        (*facts(0.25, 0.24, 0.0).splits[:2], SplitInfo("test", 0, "", "", float("nan"), 0)), 5
    )
    assert empty.drifts() == []

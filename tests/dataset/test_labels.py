"""Labels of the threshold task come from the spec's own horizon and price basis."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.dataset.labels import make_labels
from engine.dataset.spec import LabelSpec
from engine.errors import UserError


def random_walk(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0, 0.006, n)))
    dates = pd.bdate_range("2001-01-01", periods=n, name="Date")
    return pd.DataFrame({"Close": close, "High": high}, index=dates)


def brute_force(frame: pd.DataFrame, pct: float, horizon: int, column: str) -> list[float]:
    close, basis = frame["Close"].to_numpy(), frame[column].to_numpy()
    out = []
    for t in range(len(frame)):
        if t + horizon >= len(frame):
            out.append(math.nan)
        else:
            best = basis[t + 1 : t + horizon + 1].max()
            out.append(1.0 if best >= close[t] * (1 + pct / 100) else 0.0)
    return out


def test_hand_computed_close_and_high() -> None:
    frame = pd.DataFrame(
        {"Close": [100.0, 100.5, 101.2, 99.0, 100.0], "High": [100.0, 101.0, 101.3, 99.5, 100.1]}
    )
    close_h1 = make_labels(frame, LabelSpec("threshold_1pct", 1, "close"))
    high_h1 = make_labels(frame, LabelSpec("threshold_1pct", 1, "high"))
    close_h2 = make_labels(frame, LabelSpec("threshold_1pct", 2, "close"))
    assert close_h1.tolist()[:4] == [0.0, 0.0, 0.0, 1.0]  # 100 -> 100.5 no; 99 -> 100 yes
    assert high_h1.tolist()[:4] == [1.0, 0.0, 0.0, 1.0]  # High 101 >= 101 on day 1
    assert close_h2.tolist()[:3] == [1.0, 0.0, 0.0]  # 101.2 two days after 100
    assert math.isnan(close_h1.iloc[-1]) and close_h2.iloc[-2:].isna().all()


@pytest.mark.parametrize("basis", ["close", "high"])
@pytest.mark.parametrize("horizon", [1, 3, 5])
def test_matches_brute_force(horizon: int, basis: str) -> None:
    frame = random_walk()
    labels = make_labels(frame, LabelSpec("threshold_0.5pct", horizon, basis))  # type: ignore[arg-type]
    expected = brute_force(frame, 0.5, horizon, basis.capitalize())
    np.testing.assert_array_equal(labels.to_numpy(), np.array(expected))
    assert labels.index.equals(frame.index)


def test_horizon_1_and_5_differ_on_the_same_data() -> None:
    frame = random_walk()
    h1 = make_labels(frame, LabelSpec(horizon=1))
    h5 = make_labels(frame, LabelSpec(horizon=5))
    assert h1.isna().sum() == 1 and h5.isna().sum() == 5
    both = h1.notna() & h5.notna()
    assert (h1[both] != h5[both]).sum() > 20
    assert h5.mean() > h1.mean()  # more days to reach the target


def test_default_basis_is_high() -> None:
    frame = random_walk()
    assert make_labels(frame, LabelSpec()).equals(make_labels(frame, LabelSpec(price_basis="high")))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (LabelSpec(task="up_1pct"), "labels.task"),
        (LabelSpec(horizon=0), "labels.horizon"),
        (LabelSpec(price_basis="low"), "labels.price_basis"),  # type: ignore[arg-type]
    ],
)
def test_bad_spec_is_a_user_error_naming_the_field(spec: LabelSpec, field: str) -> None:
    with pytest.raises(UserError) as caught:
        make_labels(random_walk(), spec)
    assert caught.value.where == field


def test_missing_column_is_a_user_error() -> None:
    with pytest.raises(UserError, match="'High'"):
        make_labels(random_walk().drop(columns=["High"]), LabelSpec(price_basis="high"))

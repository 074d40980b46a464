"""Binary labels of the `threshold_<X>pct` task, from the experiment's own LabelSpec.

Label at day t is 1.0 when max(basis[t+1 .. t+h]) >= Close[t] * (1 + X / 100), where h
is `spec.horizon` and basis is High (default) or Close. The last h days have no complete
future and get NaN, so they can never become windows.

The horizon is read from the spec passed in and nowhere else: the reference pipeline
trained its 3- and 5-day studies on 1-day labels because the horizon came from another
config (original-pipeline.md, item 3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.dataset.spec import LabelSpec, parse_task
from engine.errors import UserError


def future_max(values: pd.Series, horizon: int) -> pd.Series:
    """max(values[t+1 .. t+horizon]) at each t; NaN where that range runs past the end."""
    array = values.to_numpy(dtype=float)
    n = len(array)
    out = np.full(n, np.nan)
    if n > horizon:
        # (n - horizon, horizon) view: row t holds values[t+1 .. t+horizon].
        ahead = np.lib.stride_tricks.sliding_window_view(array[1:], horizon)
        out[: n - horizon] = ahead.max(axis=1)
    return pd.Series(out, index=values.index, name=values.name)


def make_labels(frame: pd.DataFrame, spec: LabelSpec) -> pd.Series:
    """Float 0/1 labels for `frame` (needs Close and the basis column), NaN at the end."""
    try:
        threshold_pct = parse_task(spec.task)
    except ValueError as error:
        raise UserError(str(error), where="labels.task") from None
    if not isinstance(spec.horizon, int) or spec.horizon < 1:
        raise UserError(
            f"horizon must be an integer >= 1, got {spec.horizon!r}", where="labels.horizon"
        )
    if spec.price_basis not in ("close", "high"):
        raise UserError(
            f"price basis must be 'close' or 'high', got {spec.price_basis!r}",
            where="labels.price_basis",
        )
    basis_column = "High" if spec.price_basis == "high" else "Close"
    for column in {"Close", basis_column}:
        if column not in frame.columns:
            raise UserError(
                f"the data has no {column!r} column, needed by the labels",
                where="labels",
                hint=f"columns are {', '.join(map(str, frame.columns))}",
            )
    target = frame["Close"].to_numpy(dtype=float) * (1.0 + threshold_pct / 100.0)
    ahead = future_max(frame[basis_column], spec.horizon).to_numpy()
    labels = np.where(np.isnan(ahead), np.nan, (ahead >= target).astype(float))
    return pd.Series(labels, index=frame.index, name=f"{spec.task}_h{spec.horizon}")

"""Every sentence the report says, from one function: `say(fact)`.

The report's steps compute facts (a trend, a comparison with a baseline, label rates);
this module alone turns them into words, so "loss falls with size", "loses to logistic
regression" or "label rate drifts" mean the same everywhere (terminal, report.md,
report.json), each has a test (tests/report/test_words.py), and every word of judgement
names the test behind it and its level:

- a trend verdict: the t interval of the slope per decade over the size means
  (engine/report/trend.py), with its degrees of freedom;
- "beats" / "loses to": the paired test over test windows (engine/report/compare.py),
  Holm-adjusted over the report's comparisons, with their number;
- "drifts": the label-rate change beyond DRIFT_LIMIT (engine/dataset/splits.py), the one
  drift convention of docs/data.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.dataset.splits import DRIFT_LIMIT, label_drift
from engine.report.baselines import LOGISTIC, PERSISTENCE
from engine.report.compare import Comparison
from engine.report.powerlaw import Exponent
from engine.report.trend import Trend, TrendDifference

_NO_ARTICLE = (LOGISTIC, PERSISTENCE)  # "loses to logistic regression", "beats persistence"


@dataclass(frozen=True)
class TrendFact:
    """A group's trend per decade, pooled over periods, with each period's verdict and
    the power law's exponent when the sizes determine it."""

    label: str  # "h1", "h5 threshold_2pct" ...
    trend: Trend
    periods: tuple[Trend, ...] = ()
    exponent: Exponent | None = None
    of: str = "test BCE"


@dataclass(frozen=True)
class VersusFact:
    """One experiment against one baseline."""

    comparison: Comparison


@dataclass(frozen=True)
class BaselineSummaryFact:
    """One horizon's experiments against its tested baselines, for the headline."""

    horizon: int
    comparisons: tuple[Comparison, ...]


@dataclass(frozen=True)
class DifferenceFact:
    difference: TrendDifference


@dataclass(frozen=True)
class DriftFact:
    """The label rate of the windows a period's models were fitted on, and its test's."""

    horizon: int
    period: int
    fitted_rate: float
    test_rate: float

    @property
    def drift(self) -> float:
        return label_drift(self.fitted_rate, self.test_rate)

    @property
    def drifts(self) -> bool:
        return abs(self.drift) > DRIFT_LIMIT

    @property
    def nats(self) -> float:
        """Test BCE lost by predicting the fitted rate instead of the test rate."""
        p = min(max(self.fitted_rate, 1e-7), 1 - 1e-7)
        q = min(max(self.test_rate, 1e-7), 1 - 1e-7)
        return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))


Fact = TrendFact | VersusFact | BaselineSummaryFact | DifferenceFact | DriftFact


def say(fact: Fact) -> str:
    """The sentence for one fact (the only place the report's words are made)."""
    if isinstance(fact, TrendFact):
        return _trend(fact)
    if isinstance(fact, VersusFact):
        return _versus(fact.comparison)
    if isinstance(fact, BaselineSummaryFact):
        return _summary(fact)
    if isinstance(fact, DifferenceFact):
        return _difference(fact.difference)
    return _drift(fact)


def trend_test(t: Trend) -> str:
    pct = round(t.level * 100)
    return (
        f"{pct}% t({t.df:g}) interval of the slope over {t.n_sizes} size means, widened by "
        "the within-size variance"
    )


def _trend(fact: TrendFact) -> str:
    t = fact.trend
    if t.verdict == "too few sizes":
        return (
            f"{fact.label}: too few sizes for a trend ({t.n_sizes} sizes, {t.n_runs} runs; "
            "a trend needs 3 sizes or more)"
        )
    verdict = str(t.verdict)
    if t.verdict == "no detectable trend":
        verdict = f"no detectable trend in {fact.of} with size"
    line = (
        f"{fact.label}: {verdict}: {t.slope:+.4f} {fact.of} per decade of parameters "
        f"{t.interval_text()} ({trend_test(t)}; {t.n_configs} configurations, {t.n_runs} runs)"
    )
    if fact.periods:
        counts = [p.verdict for p in fact.periods]
        shown = [v for v in dict.fromkeys(counts) if v != "too few sizes"]
        parts = [f"{_short(v)} in {counts.count(v)} of {len(counts)}" for v in shown]
        if parts:
            line += "; per test period: " + ", ".join(parts)
    if fact.exponent is not None:
        line += f"; {fact.exponent.text()}"
    return line


def _short(verdict: str) -> str:
    return {
        "loss falls with size": "falls",
        "loss rises with size": "rises",
        "no detectable trend": "no detectable trend",
    }.get(verdict, verdict)


def _name(c: Comparison) -> str:
    name = c.baseline if c.baseline in _NO_ARTICLE else f"the {c.baseline}"
    if c.oracle:
        name += " (an oracle: it knows the test label rate; a reference, not a competitor)"
    return name


def comparison_test(c: Comparison) -> str:
    g = c.pooled
    periods = f" in {len(c.periods)} periods" if len(c.periods) > 1 else ""
    if c.oracle:
        return f"95% interval, paired over {g.n_windows} test windows{periods}; not tested"
    return (
        f"paired test over {g.n_windows} test windows{periods}, batch-means variance, "
        f"Holm-adjusted over {c.holm_m} comparisons at 5%: interval at "
        f"{1 - g.level_alpha:.2%}"
    )


def verdict_text(c: Comparison) -> str:
    """The table cell: the word when the adjusted interval excludes 0, otherwise the
    gap and its interval (test BCE, model minus baseline: negative is better)."""
    if c.word in ("beats", "loses to"):
        return f"{c.word} ({c.pooled.text()})"
    if c.oracle:
        return f"reference ({c.pooled.text()})"
    if not math.isfinite(c.pooled.gap):
        return "n/a"
    return f"no detectable difference ({c.pooled.text()})"


def _versus(c: Comparison) -> str:
    subject = f"{c.experiment} vs {_name(c)}" if c.oracle else c.experiment
    if c.oracle:
        head = f"{subject}: test BCE {c.pooled.text()}"
    elif c.word in ("beats", "loses to"):
        head = f"{c.experiment} {c.word} {_name(c)}: test BCE {c.pooled.text()}"
    else:
        head = (
            f"{c.experiment}: no detectable difference from {_name(c)}: test BCE {c.pooled.text()}"
        )
    words = [w for w in c.period_words() if w != "n/a"]
    per = ""
    if len(words) > 1 and not c.oracle:
        tally = [f"{w} in {words.count(w)} of {len(words)}" for w in dict.fromkeys(words)]
        per = "; per period: " + ", ".join(tally)
    auc = ""
    if math.isfinite(c.model_auc):
        base = f"{c.baseline_auc:.3f}" if math.isfinite(c.baseline_auc) else "n/a (a constant)"
        auc = f"; ROC-AUC {c.model_auc:.3f} vs {base} (described, not tested)"
    return f"{head} ({comparison_test(c)}){per}{auc}"


def _summary(fact: BaselineSummaryFact) -> str:
    """One horizon against every tested baseline: where its models beat or lose to each,
    then the baselines nothing differs from."""
    cs = fact.comparisons
    names = list(dict.fromkeys(c.baseline for c in cs))
    sizes = len({c.size for c in cs})
    found, quiet = [], []
    for name in names:
        group = [c for c in cs if c.baseline == name]
        label = _name(group[0])
        for word in ("loses to", "beats"):
            hits = [c.size for c in group if c.word == word]
            if hits:
                verb = "lose to" if word == "loses to" else "beat"
                found.append(f"{verb} {label} at {len(hits)} of {len(group)} sizes "
                             f"({', '.join(hits)})")  # fmt: skip
        if all(c.word == "no detectable difference" for c in group):
            quiet.append(label)
    parts = [f"models {part}" for part in found]
    if quiet:
        listed = ", ".join(quiet[:-1]) + (" or " if len(quiet) > 1 else "") + quiet[-1]
        parts.append(f"no detectable difference from {listed} at any of {sizes} sizes")
    m = max(c.holm_m for c in cs)
    return (
        f"h{fact.horizon} against the baselines: {'; '.join(parts)} (paired test of test BCE "
        f"over test windows, Holm-adjusted over {m} comparisons at 5%)"
    )


def _difference(d: TrendDifference) -> str:
    pct = round(d.level * 100)
    how = (
        f"paired by size over {d.n_sizes} shared sizes"
        if d.paired
        else "two independent slopes, Welch degrees of freedom"
    )
    if d.verdict == "too few sizes":
        return f"{d.a} vs {d.b}: too few sizes to compare the trends"
    word = "the trends differ" if d.verdict == "differ" else "no detectable difference in trend"
    return (
        f"{d.a} vs {d.b}: {word}: slope difference {d.difference:+.4f} per decade "
        f"[{d.low:+.4f}, {d.high:+.4f}] ({pct}% t({d.df:.0f}) interval, {how})"
    )


def _drift(fact: DriftFact) -> str:
    where = f"h{fact.horizon} period {fact.period}"
    rates = (
        f"test {fact.test_rate:.3f} vs {fact.fitted_rate:.3f} in the windows its models were "
        f"fitted on ({fact.drift:+.0%} of the rarer class; the limit is {DRIFT_LIMIT:.0%})"
    )
    if fact.drifts:
        return (
            f"{where}: label rate drifts: {rates}; a constant at the fitted rate loses "
            f"{fact.nats:.4f} nats of test BCE to the oracle constant"
        )
    return f"{where}: label rate steady: {rates}"


def summaries(comparisons: Sequence[Comparison]) -> list[BaselineSummaryFact]:
    """Per horizon, the summary fact over its tested baselines."""
    groups: dict[int, list[Comparison]] = {}
    for c in comparisons:
        if not c.oracle and math.isfinite(c.pooled.gap):
            groups.setdefault(c.horizon, []).append(c)
    return [BaselineSummaryFact(h, tuple(cs)) for h, cs in sorted(groups.items())]

"""Every sentence the report says, from one function: `say(fact)`.

The report's steps compute facts (a fit, a comparison with a baseline, label rates);
this module alone turns them into words, so "loses to logistic regression", "no evidence
of scaling" or "label rate drifts" mean the same everywhere (terminal, report.md,
report.json) and each has a test (tests/report/test_words.py). `headline` picks the
facts a reader must see first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.report.baselines import LOGISTIC, PERSISTENCE
from engine.report.compare import Comparison
from engine.report.powerlaw import MIN_SIZES, PowerLawFit, alpha_text

# Label drift is worth a sentence when predicting the train+validation rate costs at
# least this much test BCE over predicting the test rate itself (the Bernoulli KL
# divergence, nats): about the seed-to-seed spread of the demo's test BCE, so a drift
# this large moves a model's test loss as much as the noise the verdict accounts for.
DRIFT_NATS = 0.005


@dataclass(frozen=True)
class FitFact:
    """A power-law fit of one horizon, of test BCE or of the margin over a baseline."""

    horizon: int
    fit: PowerLawFit
    of: str = "test BCE"  # or "margin over logistic regression"


@dataclass(frozen=True)
class VersusFact:
    """One experiment's runs against one baseline: the BCE and the ROC-AUC comparison."""

    bce: Comparison
    auc: Comparison


@dataclass(frozen=True)
class LosesToLinearFact:
    """How many experiments lose to logistic regression on test BCE (every run worse)."""

    losing: tuple[str, ...]
    total: int


@dataclass(frozen=True)
class DriftFact:
    """The label rate the models were fitted on and the test split's."""

    horizon: int
    fitted_rate: float
    test_rate: float

    @property
    def nats(self) -> float:
        """Test BCE lost by predicting the fitted rate instead of the test rate."""
        p = min(max(self.fitted_rate, 1e-7), 1 - 1e-7)
        q = min(max(self.test_rate, 1e-7), 1 - 1e-7)
        return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))


Fact = FitFact | VersusFact | LosesToLinearFact | DriftFact
_NO_ARTICLE = (LOGISTIC, PERSISTENCE)  # "loses to logistic regression", "beats persistence"


def say(fact: Fact) -> str:
    """The sentence for one fact (the only place the report's words are made)."""
    if isinstance(fact, FitFact):
        return _fit(fact)
    if isinstance(fact, VersusFact):
        return _versus(fact)
    if isinstance(fact, LosesToLinearFact):
        return (
            f"models lose to logistic regression: in {len(fact.losing)} of {fact.total} "
            f"experiments every retrained run has a higher test BCE than a logistic "
            f"regression on the last day's features ({', '.join(fact.losing)})"
        )
    return _drift(fact)


def _fit(fact: FitFact) -> str:
    fit, h = fact.fit, f"h{fact.horizon}"
    what = "" if fact.of == "test BCE" else f" ({fact.of})"
    if fit.verdict == "too few sizes":
        return (
            f"{h}{what}: too few sizes for a verdict: {fit.n_sizes} sizes, {fit.n_points} "
            f"runs; a verdict needs {MIN_SIZES} sizes or more"
        )
    pct = round(fit.level * 100)
    alpha = f"alpha = {alpha_text(fit.alpha)}, {pct}% CI {fit.interval_text()}"
    over = f"over {fit.n_sizes} sizes, {fit.n_configs} configurations, {fit.n_points} runs"
    if fit.verdict == "no evidence of scaling":
        return f"{h}{what}: no evidence of scaling: {alpha} contains 0 ({over})"
    if fit.verdict == "inverse scaling":
        falls = "the gap widens with size" if what else "loss rises with size"
        return f"{h}{what}: inverse scaling, {falls}: {alpha} ({over})"
    if what:
        return (
            f"{h}{what}: bigger models close the gap to logistic regression: {alpha} "
            f"({over}), margin floor c = {fit.c:+.4f}"
        )
    return f"{h}: loss falls with size: {alpha}, floor c = {fit.c:.4f} ({over})"


def _spread(c: Comparison) -> str:
    if not math.isfinite(c.model_mean):
        return "n/a"
    sd = f" ± {c.model_sd:.4f}" if math.isfinite(c.model_sd) else ""
    return f"{c.model_mean:.4f}{sd}"


def _part(c: Comparison, label: str) -> str:
    if c.outcome == "n/a":
        return f"{label} n/a"
    return (
        f"{label} {_spread(c)} vs {c.baseline_value:.4f} ({c.n_better} of {c.n_runs} runs better)"
    )


def _versus(fact: VersusFact) -> str:
    bce, auc = fact.bce, fact.auc
    outcomes = {o.outcome for o in (bce, auc) if o.outcome != "n/a"}
    if not outcomes:
        verb = "cannot be compared with"
    elif outcomes == {"beats"}:
        verb = "beats"
    elif outcomes == {"loses to"}:
        verb = "loses to"
    else:
        verb = "neither beats nor loses to"
    name = bce.baseline if bce.baseline in _NO_ARTICLE else f"the {bce.baseline}"
    if bce.oracle:
        name += " (an oracle: it knows the test label rate; a reference, not a competitor)"
    return f"{bce.experiment} {verb} {name}: {_part(bce, 'test BCE')}; {_part(auc, 'ROC-AUC')}"


def _drift(fact: DriftFact) -> str:
    change = (
        (fact.test_rate - fact.fitted_rate) / fact.fitted_rate if fact.fitted_rate else math.nan
    )
    if fact.nats >= DRIFT_NATS:
        return (
            f"h{fact.horizon}: label rate drifts: train+validation {fact.fitted_rate:.3f}, "
            f"test {fact.test_rate:.3f} ({change:+.0%}); a constant at the train+validation "
            f"rate loses {fact.nats:.4f} nats of test BCE to the oracle constant"
        )
    return (
        f"h{fact.horizon}: label rate steady: train+validation {fact.fitted_rate:.3f}, "
        f"test {fact.test_rate:.3f} ({change:+.0%})"
    )


def loses_to_linear(versus: list[VersusFact]) -> LosesToLinearFact | None:
    """The headline fact when some experiment's runs all lose to logistic regression on
    test BCE; None when none does."""
    on_bce = [v.bce for v in versus if v.bce.baseline == LOGISTIC]
    losing = tuple(c.experiment for c in on_bce if c.outcome == "loses to")
    return LosesToLinearFact(losing, len(on_bce)) if losing else None

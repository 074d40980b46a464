"""Can the campaign answer its scaling question? Warnings (never errors) from `hpotui
check`, in numbers the report's adequacy block uses too (engine/report/adequacy.py):

- fewer than GOOD_SIZES parameter budgets at a horizon: the trend per decade has S - 2
  degrees of freedom and the power law's exponent needs 5 sizes (docs/report.md);
- too few trials for the report's retraining after pruning: the report retrains the
  top `[report] top` complete trials of each search. A median pruner is expected to
  prune about half of the trials after its `n_startup_trials`, hyperband about two
  thirds; when fewer than twice `top` are then expected to complete, the "top"
  configurations are most of what the search finished, and it chose little.
"""

from __future__ import annotations

from collections import defaultdict

from engine.campaign.model import Campaign, ExperimentConfig

GOOD_SIZES = 5
PRUNED_SHARE = {"median": 0.5, "hyperband": 2 / 3, "none": 0.0}


def expected_complete(exp: ExperimentConfig) -> float:
    """Trials expected to complete under the experiment's pruner (module doc)."""
    startup = min(exp.pruner.n_startup_trials, exp.n_trials)
    share = PRUNED_SHARE.get(exp.pruner.kind, 0.5)
    return startup + (exp.n_trials - startup) * (1 - share)


def design_warnings(campaign: Campaign) -> list[str]:
    out = []
    budgets: dict[int, set[str]] = defaultdict(set)
    for exp in campaign.experiments:
        budgets[exp.horizon].add(exp.budget)
    for horizon, sizes in sorted(budgets.items()):
        if len(sizes) < GOOD_SIZES:
            out.append(
                f"h{horizon}: {len(sizes)} parameter budget(s): the report's trend per decade "
                f"keeps {max(len(sizes) - 2, 0)} degree(s) of freedom and a power law's "
                f"exponent needs 5 sizes; add budgets (at least {GOOD_SIZES}, log-spaced) to "
                "ask a scaling question"
            )
    top = campaign.report.top
    thin = [e for e in campaign.experiments if expected_complete(e) < 2 * top]
    if thin:
        e = thin[0]
        names = ", ".join(x.name for x in thin[:4]) + (" ..." if len(thin) > 4 else "")
        out.append(
            f"{names}: n_trials {e.n_trials} with a {e.pruner.kind} pruner "
            f"(n_startup_trials {e.pruner.n_startup_trials}) is expected to complete "
            f"{expected_complete(e):.0f} trials, fewer than twice the report's top {top}: "
            "its top configurations would be most of what the search finished; raise "
            "n_trials or pruner.n_startup_trials, or lower [report] top"
        )
    return out

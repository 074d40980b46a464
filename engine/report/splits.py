"""The report's split section: per experiment, what its train / validation / test hold.

Facts come from `engine.dataset.splits.split_facts` (the one function `hpotui check` and
the TUI use too): window counts, first and last window days, label rates, and the drift
warnings, so a reader sees how far the test label rate sits from the rate the models and
the constant prior were fitted on before reading any loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.dataset.spec import DataSpec
from engine.dataset.splits import SplitFacts, split_facts
from engine.errors import UserError
from engine.report.collect import ExperimentResult

if TYPE_CHECKING:
    from engine.report.build import ScalingReport


def experiment_splits(results: list[ExperimentResult]) -> dict[str, SplitFacts | str]:
    """Split facts by experiment name (an error text where the data cannot be read).

    Reads the processed dataset only (a campaign that ran has it); never builds one."""
    from engine.dataset.manifest import load_processed

    by_spec: dict[DataSpec, SplitFacts | str] = {}
    out: dict[str, SplitFacts | str] = {}
    for exp in results:
        spec = exp.config.data
        if spec not in by_spec:
            try:
                frame, _ = load_processed(spec.dataset, spec.tier, spec.version)
                by_spec[spec] = split_facts(frame, spec)
            except UserError as error:
                by_spec[spec] = str(error)
        out[exp.name] = by_spec[spec]
    return out


def experiment_periods(results: list[ExperimentResult]) -> dict[str, list[dict[str, Any]] | str]:
    """Each experiment's walk-forward test periods (engine/dataset/periods.py) with their
    windows and dates, or an error text; reads the processed dataset only."""
    from engine.dataset.manifest import load_processed
    from engine.dataset.periods import test_periods

    by_spec: dict[DataSpec, list[dict[str, Any]] | str] = {}
    out: dict[str, list[dict[str, Any]] | str] = {}
    for exp in results:
        spec = exp.config.data
        if spec not in by_spec:
            try:
                frame, _ = load_processed(spec.dataset, spec.tier, spec.version)
                periods = test_periods(len(frame), spec)
                by_spec[spec] = [p.to_dict(frame.index) for p in periods]
            except UserError as error:
                by_spec[spec] = str(error)
        out[exp.name] = by_spec[spec]
    return out


def periods_markdown(report: ScalingReport) -> list[str]:
    """One table row per data spec's period: training, early-stopping and test spans."""
    seen: dict[str, list[str]] = {}
    for row in report.rows:
        periods = report.periods.get(row.result.name)
        if isinstance(periods, list):
            key = repr(periods)
            seen.setdefault(key, []).append(row.result.name)
    if not seen:
        return []
    lines = [
        "",
        "## Test periods (walk-forward)",
        "",
        "| experiments | period | trained on | stopped early on | tested on |",
        "|---|---|---|---|---|",
    ]
    for row in report.rows:
        periods = report.periods.get(row.result.name)
        if not isinstance(periods, list) or row.result.name != seen[repr(periods)][0]:
            continue
        names = ", ".join(seen[repr(periods)])
        for p in periods:
            cells = [_span(p[k]) for k in ("train", "early_stop", "test")]
            lines.append(f"| {names} | {p['period']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "- each period's models and baselines learn from every window before its test "
        "block, less the embargo, and stop early on the last windows of that span; "
        "period 1 is the search's own split. The search saw no test window.",
    ]
    return lines


def _span(part: dict[str, Any]) -> str:
    if not part.get("windows"):
        return "-"
    return f"{part['windows']} windows {part.get('first', '?')} .. {part.get('last', '?')}"


def splits_markdown(report: ScalingReport) -> list[str]:
    """The "Splits" section: one table row per experiment and split, then drift lines."""
    if not report.splits:
        return []
    lines = [
        "",
        "## Splits: windows, dates and label rates",
        "",
        "| experiment | normalization | split | windows | first day | last day | label rate |",
        "|---|---|---|---|---|---|---|",
    ]
    drifts: list[str] = []
    for row in report.rows:
        name = row.result.name
        facts = report.splits.get(name)
        norm = row.result.config.data.normalization
        if isinstance(facts, str):
            lines.append(f"| {name} | {norm} | - | - | - | - | {facts} |")
            continue
        if facts is None:
            continue
        for info in facts.splits:
            lines.append(
                f"| {name} | {norm} | {info.name} | {info.size} | {info.start or '-'} | "
                f"{info.end or '-'} | {info.label_rate:.3f} |"
            )
        drifts += [f"- {name}: {text}" for text in facts.drifts()]
    gaps = sorted({f.gap for f in report.splits.values() if isinstance(f, SplitFacts)})
    warmups = sorted({f.warmup for f in report.splits.values()
                      if isinstance(f, SplitFacts) and f.warmup})  # fmt: skip
    restart = (
        f"; in chunks mode {', '.join(map(str, warmups))} more after each validation or test "
        "block, where the next block's features restart (engine/dataset/segments.py)"
        if warmups
        else ""
    )
    lines += [
        "",
        f"- between splits: {', '.join(map(str, gaps))} windows dropped at each boundary "
        f"(purge + context length - 1){restart}, so no window shares an input or label day "
        "with a window of another split, and no training window's features read a "
        "validation or test price.",
        "- label drift: a split's label rate against train's, relative to the rarer class "
        "(docs/data.md); beyond 20% it is called drift.",
        *drifts,
    ]
    return lines


def splits_lines(report: ScalingReport) -> list[str]:
    """The splits in a few printed lines: experiments that share their splits (same data
    spec) are named together, each split as `name windows first..last label rate`."""
    groups: dict[str, list[str]] = {}
    for row in report.rows:
        facts = report.splits.get(row.result.name)
        if isinstance(facts, SplitFacts):
            text = " · ".join(
                f"{i.name} {i.size} windows {i.start or '-'}..{i.end or '-'} "
                f"label rate {i.label_rate:.3f}"
                for i in facts.splits
            )
        elif isinstance(facts, str):
            text = facts
        else:
            continue
        groups.setdefault(text, []).append(row.result.name)
    return [f"{', '.join(names)}: {text}" for text, names in groups.items()]


def splits_json(report: ScalingReport) -> dict[str, Any]:
    return {
        name: ({"error": facts} if isinstance(facts, str) else facts.to_dict())
        for name, facts in report.splits.items()
    }

"""`hpotui --batch`'s trial lines, fitted to the terminal: a line is made of fields, and
on a terminal too narrow for all of them the columns close up and the least needed give
way (duration, then architecture, parameter count and worker are kept only where they
fit), so a line never wraps onto a stray `)`; a failed or interrupted trial's reason goes
on its own indented line. Piped output keeps every field.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine import protocol as p

STYLES = {"complete": "", "pruned": "dim", "failed": "red", "interrupted": "yellow"}
REASON_INDENT = "    "


def arch_label(arch: dict[str, Any]) -> str:
    if not arch:
        return "-"
    return f"d{arch.get('d_model')}-L{arch.get('n_layers')}-h{arch.get('n_heads')}-ff{arch.get('d_ff')}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def objective_text(objective: str, value: float | None) -> str:
    """A trial's value as its objective reads: val_bce as stored, val_auc as the ROC-AUC
    (the stored value is 1 - ROC-AUC, which the search minimises)."""
    if value is None:
        return "-"
    return f"{1 - value:.4f}" if objective == "val_auc" else f"{value:.4f}"


def trial_lines(
    e: p.TrialFinished,
    head: str,
    ordinal: str,
    n_trials: int | None,
    width: int | None,
    objective: str = "val_bce",
) -> list[Text]:
    """`[3/12 trials · 4m10s left] 20K_h1  2/6  trial #4  complete  val_bce 0.4469 ...`,
    cut to `width` (None: every field), then the reason of a trial that did not complete.
    The value is named by the experiment's objective (`val_auc 0.688`, not 1 - AUC)."""
    n = f"{ordinal:>3}/{n_trials:<3}" if n_trials is not None else f"{ordinal:>3}    "
    value = objective_text(objective, e.value)
    # (text, priority): the lowest priority is dropped first when the line is too wide
    fields = [
        (head, 9),
        (f"{e.experiment:<12}", 10),
        (n, 9),
        (f"trial #{e.trial:<3}", 10),
        (f"{e.state:<11}", 10),
        (f"{objective} {value:<8}", 10),
        (f"{arch_label(e.architecture):<20}", 3),
        (f"{e.n_params:>11,} params", 2),
        (f"{duration(e.duration_s):>7}", 4),
        (e.worker, 1),
    ]
    style = STYLES.get(e.state, "")
    line = Text(fit(fields, width), style=style)
    lines = [line]
    if e.reason and e.state != "complete":
        if width is None:
            line.append(f"  ({e.reason})")
        else:
            reason = Text(f"{REASON_INDENT}{e.reason}", style=style)
            reason.truncate(width, overflow="ellipsis")
            lines.append(reason)
    return lines


def fit(fields: list[tuple[str, int]], width: int | None) -> str:
    """The fields joined by a space, in columns; when that is wider than `width`, the
    columns' padding goes and the lowest priorities are left out, as few as need be
    (highest priority kept first); a line still too wide is cut with an ellipsis."""
    present = [(i, text, rank) for i, (text, rank) in enumerate(fields) if text.strip()]

    def joined(keep: set[int], padded: bool) -> str:
        parts = [text if padded else text.strip() for i, text, _ in present if i in keep]
        return " ".join(parts).rstrip()

    every = {i for i, _, _ in present}
    if width is None or len(joined(every, True)) <= width:
        return joined(every, True)
    keep: set[int] = set()
    for i, _, _ in sorted(present, key=lambda f: (-f[2], f[0])):  # by priority, then order
        if len(joined(keep | {i}, False)) <= width:
            keep.add(i)
    line = joined(keep, False) if keep else joined({present[0][0]}, False)
    if len(line) > width:
        line = line[: max(0, width - 1)] + "…"
    return line

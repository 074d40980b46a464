"""Where a PatchTST applies its `dropout` rate: the `dropout_sites` model option.

Sites (in the order a window meets them):
- `embedding`: the patch embeddings plus positions, before the first layer;
- `attention`: the attention weights, after the softmax (per layer);
- `attention_out`: the attention branch after its output projection, before the
  residual add (per layer);
- `ffn_inner`: the feed-forward hidden activations, after the GELU (per layer);
- `ffn_out`: the feed-forward branch output, before the residual add (per layer).

Presets:
- `residual` (the default): embedding, attention_out, ffn_out. Two masks per layer,
  both on the residual branches (as nanoGPT), each one fused elementwise pass.
- `reference`: embedding, attention, ffn_inner, ffn_out: what the reference pipeline's
  model applied (its nn.MultiheadAttention dropout, and the two nn.Dropout of its
  feed-forward block). Three masks per layer, one of them on the (B, H, N, N)
  attention weights, which needs the explicit (math) attention in training.

`head_dropout` (before the linear head) is a rate of its own, not a site. docs/model.md
says which preset is the default and why (measured step costs).
"""

from __future__ import annotations

from typing import Any

SITES = ("embedding", "attention", "attention_out", "ffn_inner", "ffn_out")
PRESETS: dict[str, tuple[str, ...]] = {
    "residual": ("embedding", "attention_out", "ffn_out"),
    "reference": ("embedding", "attention", "ffn_inner", "ffn_out"),
}
DEFAULT = PRESETS["residual"]

DropoutSites = tuple[str, ...]


def parse_sites(value: Any) -> DropoutSites:
    """A preset name or a list of site names -> the sites, in `SITES` order.

    Raises ValueError with what was expected; an empty list means no dropout at all
    (head dropout aside).
    """
    if isinstance(value, str):
        if value in PRESETS:
            return PRESETS[value]
        raise ValueError(
            f"expected a preset ({', '.join(repr(p) for p in PRESETS)}) or a list of sites "
            f"({', '.join(SITES)}), got {value!r}"
        )
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'expected "residual", "reference" or a list of site names, got {value!r}')
    unknown = [v for v in value if v not in SITES]
    if unknown:
        raise ValueError(f"unknown dropout site {unknown[0]!r}; sites are {', '.join(SITES)}")
    if len(set(value)) != len(value):
        raise ValueError(f"expected a list without repeats, got {list(value)!r}")
    return tuple(s for s in SITES if s in value)


def describe_sites(sites: DropoutSites) -> str:
    """The preset name when `sites` is one, else the sites joined by '+' ('none': [])."""
    for name, preset in PRESETS.items():
        if tuple(sites) == preset:
            return name
    return "+".join(sites) or "none"

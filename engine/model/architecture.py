"""One point of the architecture grid: the four numbers that shape a PatchTST."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Architecture:
    """d_model, encoder layers, attention heads and feed-forward width.

    n_heads does not change the parameter count; it must divide d_model.
    """

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int

    @property
    def label(self) -> str:
        return f"d{self.d_model}-L{self.n_layers}-h{self.n_heads}-ff{self.d_ff}"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Architecture:
        return cls(
            int(data["d_model"]), int(data["n_layers"]), int(data["n_heads"]), int(data["d_ff"])
        )


@dataclass(frozen=True)
class GridSpec:
    """Value lists of the architecture grid (defaults: the reference study's)."""

    d_model: tuple[int, ...] = (64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
    n_layers: tuple[int, ...] = (
        2,
        3,
        4,
        6,
        8,
        12,
        16,
        24,
        32,
        48,
        64,
        96,
        128,
        160,
        180,
        192,
        256,
    )
    n_heads: tuple[int, ...] = (2, 4, 8, 16, 32)
    ff_ratio: tuple[int, ...] = (2, 4)
    tolerance: float = 0.25

"""The footer of every hpotui screen: Textual's, cut to what fits its width.

Textual's footer lays its keys out in a row and cuts the row at the right edge, mid-word
(`? Help` and `q Quit`, last, were the first to go: at 80 columns neither showed). This
one shows the pinned keys (help, quit, back) always, at the end, and the others in
their order while they fit; the command palette's key only where there is room to
spare. Every key is in `?` and the palette anyway.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PINNED = ("help", "quit", "close")  # actions whose key is always shown
PALETTE_MIN = 100  # columns from which the palette's key is shown too


class KeyFooter(Footer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._width = 0

    def compose(self) -> ComposeResult:
        items = list(super().compose())
        width = self.size.width or self.app.size.width
        keys = [
            i for i in items if isinstance(i, FooterKey) and not i.has_class("-command-palette")
        ]
        palette = [i for i in items if isinstance(i, FooterKey) and i.has_class("-command-palette")]
        pinned = [k for k in keys if k.action in PINNED]
        others = [k for k in keys if k.action not in PINNED]
        room = width - sum(_width(k, self.compact) for k in pinned)
        if palette and width >= PALETTE_MIN:
            room -= _width(palette[0], self.compact) + 1
        else:
            palette = []
        shown = []
        for key in others:
            cost = _width(key, self.compact)
            if cost > room:
                break  # in order: a later, smaller key does not jump ahead
            shown.append(key)
            room -= cost
        if room < 0:  # even the pinned keys do not fit with words: keys alone
            for key in pinned:
                key.description = ""
        yield from [*shown, *pinned, *palette]

    def on_resize(self, _: Any) -> None:
        if self.size.width != self._width:
            self._width = self.size.width
            self.call_after_refresh(self.recompose)


def _width(key: FooterKey, compact: bool) -> int:
    """Columns a footer key takes: key and description with their padding (and gap)."""
    text = len(key.key_display) + (len(key.description) + 1 if key.description else 0)
    return text + (1 if compact else 2)

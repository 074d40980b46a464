"""What every hpotui dialog shares: on a small terminal (under 100x20: 80x24 and less) it
takes the whole screen, its buttons stack one per line without borders, and its box
scrolls, so every choice and the line of keys stay reachable (at 40x12 the quit
dialog's "Leave running" was off-screen)."""

from __future__ import annotations

from typing import Any, TypeVar

from textual.screen import ModalScreen

T = TypeVar("T")
SMALL = (100, 20)  # under either: the small-terminal form (3 buttons need 100 columns)


class Dialog(ModalScreen[T]):
    def on_mount(self) -> None:
        self._fit(self.app.size.width, self.app.size.height)

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        self.set_class(width < SMALL[0] or height < SMALL[1], "small")

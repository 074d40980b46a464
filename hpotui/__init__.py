"""hpotui's front-end: the command line, the Textual dashboard and the batch renderer."""

from engine import __version__

__all__ = ["__version__"]

"""hpotui's back-end: data, models, training, campaign queue and hardware monitor.

Never imports textual. The front-end talks to it only through `engine.protocol`.
"""

__version__ = "0.1.0"

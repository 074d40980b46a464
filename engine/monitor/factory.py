"""`make_probe`: the probe for this machine (Linux or macOS, with NVIDIA GPUs when NVML
answers). Apart from `engine.monitor.probe` because the implementations import the
interface."""

from __future__ import annotations

import sys
from collections.abc import Callable

from engine.monitor.probe import Probe


def make_probe(campaign_pids: Callable[[], list[int]] | None = None) -> Probe:
    """The probe for this machine.

    `campaign_pids` returns the pids whose CPU and RSS count as "the campaign" (their
    children are included); default: this process.
    """
    from engine.monitor.nvidia import NvmlGpus

    gpus = NvmlGpus.open()
    if sys.platform == "darwin":
        from engine.monitor.macos import MacProbe

        return MacProbe(campaign_pids=campaign_pids, gpus=gpus)
    from engine.monitor.linux import LinuxProbe

    return LinuxProbe(campaign_pids=campaign_pids, gpus=gpus)

"""Worker processes: the trial loop (ask -> train -> tell), fused groups, each
trial's lifecycle, the local worker pool, fit by device memory and the heartbeat.
The only processes that train (and import torch)."""

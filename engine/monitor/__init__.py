"""Hardware monitor and thermal/memory policy (docs/monitor.md).

- `engine.monitor.probe`: `Probe`, `make_probe(campaign_pids=None)` -> `HardwareSample`
- `engine.monitor.policy`: `ThermalPolicy(spec, clock)`, `PolicyDecision`
- `engine.monitor.sampler`: `MonitorThread` (sample every interval on a thread)
- `engine.monitor.sample`: the contract (`Reading`, `GpuSample`, `HardwareSample`)
"""

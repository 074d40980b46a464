from __future__ import annotations

from monitor_helpers import NVML_ERROR_DRIVER_NOT_LOADED, FakeNvml, NVMLError

from engine.monitor.nvidia import INSTALL_HINT, NvmlGpus, decode_throttle_reasons


def test_reads_every_gpu_in_si_units(fake_nvml: FakeNvml) -> None:
    gpus = NvmlGpus.open(fake_nvml)
    assert gpus.unavailable is None and gpus.count == 2
    h100, rtx = gpus.read()
    assert h100.name == "NVIDIA H100 80GB HBM3"
    assert h100.utilization_pct.value == 97.0
    assert h100.memory_used_bytes.value == 64208355328
    assert h100.memory_total_bytes.value == 85520809984
    assert h100.temperature_c.value == 71.0
    assert h100.power_w.value == 612.345  # NVML reports milliwatts
    assert h100.throttle_reasons == ["sw_power_cap"]
    assert rtx.index == 1 and rtx.throttle_reasons == ["gpu_idle"]


def test_unsupported_value_is_unavailable_with_nvml_reason(fake_nvml: FakeNvml) -> None:
    rtx = NvmlGpus.open(fake_nvml).read()[1]
    assert rtx.power_w.value is None
    assert rtx.power_w.unavailable is not None and "Not Supported" in rtx.power_w.unavailable
    assert rtx.temperature_c.value == 38.0  # the rest of the card still reads


def test_no_permission_and_implausible_temperature(nvml_values: list[dict]) -> None:
    nvml_values[0]["memory_used"] = "NoPermission"
    nvml_values[0]["temperature_gpu"] = 0
    gpu = NvmlGpus.open(FakeNvml(nvml_values)).read()[0]
    assert gpu.memory_used_bytes.unavailable and "permission" in gpu.memory_used_bytes.unavailable
    assert gpu.temperature_c.value is None and "implausible" in str(gpu.temperature_c.unavailable)


def test_memory_used_leaves_out_the_driver_reservation_as_nvidia_smi_does(
    nvml_values: list[dict],
) -> None:
    reserved = 600 * 2**20
    nvml_values[0]["memory_reserved"] = reserved
    gpu = NvmlGpus.open(FakeNvml(nvml_values)).read()[0]
    assert gpu.memory_used_bytes.value == 64208355328  # NVML v2: without the reservation
    nvml_values[0]["memory_v2"] = "NotSupported"  # an older driver: v1, reservation in
    gpu = NvmlGpus.open(FakeNvml(nvml_values)).read()[0]
    assert gpu.memory_used_bytes.value == 64208355328 + reserved


def test_decodes_every_bit_and_keeps_unknown_ones() -> None:
    # nvmlClocksThrottleReason{HwThermalSlowdown, SwThermalSlowdown, HwPowerBrakeSlowdown}
    mask = 0x40 | 0x20 | 0x80 | 0x10000
    assert decode_throttle_reasons(mask) == [
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
        "unknown_0x10000",
    ]
    assert decode_throttle_reasons(0) == []


def test_driver_missing_no_gpu_and_package_missing() -> None:
    lib = NvmlGpus.open(FakeNvml([], init_error=NVML_ERROR_DRIVER_NOT_LOADED))
    assert lib.count == 0 and "Driver Not Loaded" in str(lib.unavailable)
    none = NvmlGpus.open(FakeNvml([]))
    assert none.unavailable == "no NVIDIA GPU found by NVML" and none.read() == []
    assert "pip install" in INSTALL_HINT


def test_real_pynvml_on_this_machine_says_why_there_is_no_gpu() -> None:
    gpus = NvmlGpus.open()  # the real module: no driver on the CI/dev machines
    if gpus.count:  # a machine with a GPU: the real thing must read
        assert all(g.memory_total_bytes.known for g in gpus.read())
    else:
        assert gpus.unavailable and gpus.read() == []
    gpus.close()
    gpus.close()  # idempotent


def test_close_shuts_nvml_down_once(fake_nvml: FakeNvml) -> None:
    gpus = NvmlGpus.open(fake_nvml)
    gpus.close()
    gpus.close()
    assert fake_nvml.shutdowns == 1


def test_older_driver_without_clock_event_reasons_uses_throttle_reasons(
    nvml_values: list[dict],
) -> None:
    class OldDriver(FakeNvml):
        def nvmlDeviceGetCurrentClocksEventReasons(self, h: dict) -> int:
            raise NVMLError(13)  # Function Not Found

        def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: dict) -> int:
            return 0x40

    assert NvmlGpus.open(OldDriver(nvml_values)).read()[0].throttle_reasons == [
        "hw_thermal_slowdown"
    ]
    # neither available: unknown (None), not "no reasons"
    del OldDriver.nvmlDeviceGetCurrentClocksThrottleReasons
    assert NvmlGpus.open(OldDriver(nvml_values)).read()[0].throttle_reasons is None

"""Fixtures for the monitor tests (helpers live in monitor_helpers.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from monitor_helpers import FakeNvml, fixture_text


@pytest.fixture
def nvml_values() -> list[dict[str, Any]]:
    data: dict[str, Any] = json.loads(fixture_text("nvml_values.json"))
    gpus: list[dict[str, Any]] = data["gpus"]
    return gpus


@pytest.fixture
def fake_nvml(nvml_values: list[dict[str, Any]]) -> FakeNvml:
    return FakeNvml(nvml_values)

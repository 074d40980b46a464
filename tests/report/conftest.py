"""The report tests' fixture: an empty synthetic campaign in a temporary workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.synth import SyntheticCampaign


@pytest.fixture
def synthetic(workspace: Path) -> SyntheticCampaign:
    return SyntheticCampaign()

from __future__ import annotations

from collections.abc import Iterator

import pytest
from http_sink import JsonSink


@pytest.fixture
def sink() -> Iterator[JsonSink]:
    server = JsonSink()
    yield server
    server.close()

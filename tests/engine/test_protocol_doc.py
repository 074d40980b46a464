"""docs/protocol.md shows one example per message, and every example is a valid line."""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine import protocol as p

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _examples() -> dict[str, str]:
    text = DOC.read_text()
    found = {}
    for heading, line in re.findall(r"### `([a-z_]+)`\n\n.*?\n\n```json\n(.*?)\n```", text, re.S):
        found[heading] = line
    return found


def test_every_message_has_one_documented_example_that_round_trips() -> None:
    examples = _examples()
    assert set(examples) == set(p.EVENTS) | set(p.COMMANDS)
    for name, line in examples.items():
        assert json.loads(line)["type"] == name
        message = p.decode_event(line) if name in p.EVENTS else p.decode_command(line)
        assert json.loads(p.encode(message)) == json.loads(line)


def test_the_documented_hardware_sample_names_real_fields() -> None:
    """The `hardware` example's sample (and its power state) uses HardwareSample's own
    field names, so a renamed field fails here instead of misleading a reader."""
    import dataclasses

    from engine.monitor.sample import HardwareSample, PowerState

    sample = json.loads(_examples()["hardware"])["sample"]
    shown = set(sample) - {"..."}
    assert shown <= {f.name for f in dataclasses.fields(HardwareSample)}
    assert set(sample["power"]) == {f.name for f in dataclasses.fields(PowerState)}

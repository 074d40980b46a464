"""Every protocol message round-trips through JSON; bad lines are errors, not crashes."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from engine import protocol as p


def _sample_value(annotation: object, name: str) -> object:
    text = str(annotation)
    if name == "experiments":
        return [p.ExperimentStatus("2M_h1", 0, "2M", 1, "threshold_1pct", "queued", 50)]
    if name == "trials":
        curve: list[list[float | None]] = [[1.0, None, 0.5], [2.0, 0.4, 0.45]]
        return [p.TrialRecord(3, "complete", 0.45, {"lr": 0.1}, {"d_model": 16}, curve=curve)]
    if "ExperimentState" in text or (name == "state" and "Trial" not in text):
        return "queued"
    if "TrialState" in text:
        return "complete"
    if "ThermalLevel" in text:
        return "warning"
    if "LogLevel" in text:
        return "info"
    if "Literal" in text:
        return typing.get_args(annotation)[0] if typing.get_args(annotation) else "now"
    if "dict" in text:
        return {"k": 1}
    if "bool" in text:
        return True
    if "float" in text:
        return 1.5
    if "int" in text:
        return 3
    return f"{name}-value"


def _example(cls: type[p.Message]) -> p.Message:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kwargs[f.name] = _sample_value(hints[f.name], f.name)
    return cls(**kwargs)


@pytest.mark.parametrize("cls", p.EVENT_TYPES, ids=lambda c: c.type)
def test_every_event_round_trips(cls: type[p.Event]) -> None:
    message = _example(cls)
    line = p.encode(message)
    assert "\n" not in line
    assert p.decode_event(line) == message


@pytest.mark.parametrize("cls", p.COMMAND_TYPES, ids=lambda c: c.type)
def test_every_command_round_trips(cls: type[p.Command]) -> None:
    message = _example(cls)
    assert p.decode_command(p.encode(message)) == message


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json",
        "[1,2]",
        '{"type":"nope","id":"1"}',
        '{"type":"pause"}',
        '{"type":"pause","id":"1"}',
    ],
)
def test_bad_command_lines_raise_protocol_error(line: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_command(line)


def test_nan_values_are_encoded_as_null() -> None:
    event = p.EpochEnded(
        experiment="e", trial=0, epoch=1, train_loss=float("nan"), val_loss=0.5, elapsed_s=1.0
    )
    decoded = p.decode_event(p.encode(event))
    assert isinstance(decoded, p.EpochEnded)
    assert decoded.train_loss is None


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    line = '{"type":"reply","command_id":"7","ok":true,"new_field":1}'
    decoded = p.decode_event(line)
    assert isinstance(decoded, p.Reply) and decoded.command_id == "7"


def test_major_version_compatibility() -> None:
    assert p.compatible(p.PROTOCOL_VERSION)
    assert not p.compatible("99.0")

"""All-or-nothing writes: a write that fails leaves the old file and no temporary file,
and its error names the file the caller meant (what `engine.env_faults` shows the user),
with the errno kept, never the temporary name."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from engine.atomic import write_atomic
from engine.env_faults import describe_fault


def test_a_full_disk_mid_write_keeps_the_old_file_and_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "trials.csv"
    target.write_text("old\n")

    def fill_up(tmp: Path) -> None:
        tmp.write_text("half a ta")
        raise OSError(errno.ENOSPC, "No space left on device")  # a flush: no filename

    with pytest.raises(OSError) as raised:
        write_atomic(target, fill_up)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    line = describe_fault(raised.value)
    assert line is not None and line.startswith(f"cannot write {target}: the disk is full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]  # no temporary left


def test_an_error_about_the_temporary_file_is_about_the_target(tmp_path: Path) -> None:
    target = tmp_path / "best.json"

    def refused(tmp: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", tmp)  # a Path, not a str

    with pytest.raises(PermissionError) as raised:
        write_atomic(target, refused)
    assert raised.value.filename == str(target)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_a_writer_whose_message_names_the_temporary_file_is_reworded(tmp_path: Path) -> None:
    """pyarrow's error carries no filename, and its message names the temporary file."""
    target = tmp_path / "trials.parquet"

    def pyarrow_like(tmp: Path) -> None:
        message = f"Failed to open local file '{tmp}'. Detail: [errno 13] Permission denied"
        raise PermissionError(errno.EACCES, message)

    with pytest.raises(PermissionError) as raised:
        write_atomic(target, pyarrow_like)
    line = describe_fault(raised.value)
    assert line is not None and f"cannot write {target}: it is not writable" in line
    assert ".tmp" not in line


def test_other_errors_pass_through_untouched(tmp_path: Path) -> None:
    def broken(tmp: Path) -> None:
        raise ValueError("not a file problem")

    with pytest.raises(ValueError, match="not a file problem"):
        write_atomic(tmp_path / "x", broken)
    assert not list(tmp_path.iterdir())

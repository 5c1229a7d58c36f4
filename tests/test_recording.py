"""``--record``: appending after a partial last line, refusing symbolic links, keeping recordings private."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import relay

from relay_cli.pipeline.recording import Recorder, RecordingError

PARTIAL = b'{"event_type":"calling.call.state","params":{"call_state":"ended"}}\n{"event_type":"calling.ca'


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def test_appending_after_a_partial_last_line_keeps_the_fragment_one_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(PARTIAL)  # what kill -9 or a full disk leaves
    result = relay("tail", "--demo", "--rate", "200", "-n", "3", "-o", "none", "--record", str(path))
    assert result.returncode == 0, result.stderr
    recorded = lines(path)
    assert recorded[1] == b'{"event_type":"calling.ca'
    assert orjson.loads(recorded[2])["event_type"] == "signalwire.authorization.state"
    assert len(recorded) == 2 + 3 + 1
    assert recorded[-1] == b""
    parsed = relay("parse", str(path), "-o", "json")
    assert parsed.returncode == 1
    assert parsed.stderr.count(f"{path}:") == 1 and f"{path}:2:" in parsed.stderr
    assert len(parsed.stdout.splitlines()) == len(recorded) - 2


def test_a_recording_that_ends_with_a_newline_is_appended_to_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b'{"event_type":"calling.call.state","params":{}}\n')
    recorder = Recorder(str(path))
    recorder.write({"event_type": "calling.call.play", "params": {}})
    recorder.close()
    assert path.read_bytes() == b'{"event_type":"calling.call.state","params":{}}\n' + (
        b'{"event_type":"calling.call.play","params":{}}\n'
    )


def test_record_refuses_a_symbolic_link_and_leaves_its_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    target.chmod(0o644)
    link = tmp_path / "rec.jsonl"
    link.symlink_to(target)
    result = relay("tail", "--demo", "--rate", "200", "-n", "3", "--record", str(link))
    assert result.returncode == 1
    assert f"relay: cannot record to {link}: it is a symbolic link; give the file itself\n" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == "precious\n" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_an_existing_recording_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b"")
    path.chmod(0o644)
    result = relay("tail", "--demo", "--rate", "200", "-n", "3", "-o", "none", "--record", str(path))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(lines(path)) == 4


def test_a_recording_that_cannot_be_made_private_is_refused(tmp_path: Path, monkeypatch: Any) -> None:
    """Only another user's file can make chmod fail, which a test run as root cannot set up."""
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b"")
    path.chmod(0o664)

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    with pytest.raises(RecordingError) as caught:
        Recorder(str(path))
    assert str(caught.value) == (
        f"cannot record to {path}: cannot make it private (mode 0600): Operation not permitted"
    )


def test_a_write_only_recording_gets_a_blank_line_after_a_partial_one(tmp_path: Path, monkeypatch: Any) -> None:
    """A file relay may write but not read: its last byte is unknown, and a blank line, which readers skip,
    ends whatever fragment there is. (Simulated: as root, every file is readable.)"""
    path = tmp_path / "rec.jsonl"
    path.write_bytes(PARTIAL)
    real_open = os.open

    def no_read(name: Any, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_RDWR:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(name, flags, mode)

    monkeypatch.setattr(os, "open", no_read)
    recorder = Recorder(str(path))
    recorder.write({"event_type": "calling.call.play", "params": {}})
    recorder.close()
    assert path.read_bytes() == PARTIAL + b'\n{"event_type":"calling.call.play","params":{}}\n'

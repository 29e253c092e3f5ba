"""A real recording under truncation, bit flips, kills and Ctrl-C (DESIGN.md §4)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replayvm.errors import DivergenceError, TraceFormatError
from replayvm.log import RecordingReader
from replayvm.session.replayer import Replayer
from tests.exe import EXE
from tests.session.conftest import record_guest


@pytest.fixture(scope="module")
def echo_recording(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("rec") / "echo.rvr"
    record_guest(path, "echo", sync_interval=5_000)
    return path.read_bytes()


def read_all(data: bytes) -> list[object]:
    with RecordingReader(data) as reader:
        return list(reader.events())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10**6))
def test_truncated_recording_is_a_prefix_or_trace_format_error(echo_recording: bytes, cut: int) -> None:
    full = read_all(echo_recording)
    cut %= len(echo_recording) + 1
    try:
        events = read_all(echo_recording[:cut])
    except TraceFormatError:
        return
    assert events == full[: len(events)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=7)), min_size=1, max_size=4)
)
def test_bit_flipped_recording_reads_or_fails_cleanly(echo_recording: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(echo_recording)
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    try:
        read_all(bytes(data))
    except TraceFormatError:
        pass


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_bit_flipped_recording_replays_or_fails_with_a_replayvm_error(
    echo_recording: bytes, pos: int, bit: int
) -> None:
    data = bytearray(echo_recording)
    data[pos % len(data)] ^= 1 << bit
    try:
        Replayer(bytes(data)).run()
    except (TraceFormatError, DivergenceError):
        pass


def test_hostile_tiny_file_fails_fast_on_the_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "evil.rvr"
    bad.write_bytes(b"\x89RVR\r\n\x1a\n\x01\x00" + b"\xff" * 10)
    for cmd in ("info", "replay"):
        proc = subprocess.run([*EXE, cmd, str(bad)], capture_output=True, check=False, timeout=60)
        assert proc.returncode == 2
        err = proc.stderr.decode().strip()
        assert len(err.splitlines()) == 1 and "bad recording at offset" in err and "Traceback" not in err


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition (not a timing assumption): fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def logged_inputs(path: Path) -> int:
    try:
        with RecordingReader(path) as reader:
            return reader.summary().event_counts.get("serial-input", 0)
    except (TraceFormatError, OSError):
        return 0


def start_interactive_recording(path: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*EXE, "record", "echo", "-o", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"before the crash\n")
    proc.stdin.flush()
    line = b""
    while b"echo: before the crash" not in line:
        line = proc.stdout.readline()
        assert line, "recorder ended early"
    wait_for(lambda: logged_inputs(path) > 0, "the input to reach the disk")
    return proc


def test_killed_recorder_leaves_a_replayable_prefix(tmp_path: Path) -> None:
    rec = tmp_path / "killed.rvr"
    proc = start_interactive_recording(rec)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    info = subprocess.run([*EXE, "info", str(rec)], capture_output=True, check=False, timeout=60)
    assert info.returncode == 0
    assert b"INCOMPLETE" in info.stdout
    replayed = subprocess.run(
        [*EXE, "replay", str(rec)], stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=60
    )
    assert replayed.returncode == 0, replayed.stderr
    assert b"echo: before the crash" in replayed.stdout
    assert b"incomplete" in replayed.stderr


def test_ctrl_c_finishes_the_recording_cleanly(tmp_path: Path) -> None:
    rec = tmp_path / "interrupted.rvr"
    proc = start_interactive_recording(rec)
    os.kill(proc.pid, signal.SIGINT)  # stdin stays open: the guest is still waiting for input
    proc.wait(timeout=60)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    with RecordingReader(rec) as reader:
        assert reader.complete
        assert reader.end is not None and reader.end.reason == "interrupted"
    replayed = subprocess.run(
        [*EXE, "replay", str(rec)], stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=60
    )
    assert replayed.returncode == 130
    assert b"replay matched the recording" in replayed.stderr


def test_echo_typed_on_a_terminal_replays_without_input(tmp_path: Path) -> None:
    """Interactive input from a real terminal (a pty): keys go to the guest as typed."""
    import pty

    rec = tmp_path / "tty.rvr"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*EXE, "record", "echo", "-o", str(rec), "-q"], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    os.close(slave)
    assert proc.stdout is not None
    try:
        os.write(master, b"typed on a tty\r")
        line = b""
        while b"echo: typed on a tty" not in line:
            line = proc.stdout.readline()
            assert line, "recorder ended early"
        os.write(master, b"quit\r")
        proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 1
    replayed = subprocess.run(
        [*EXE, "replay", str(rec)], stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=60
    )
    assert b"echo: typed on a tty" in replayed.stdout
    assert replayed.returncode == 1

"""Recordings and debuggers for the debugger tests.

Each bundled guest is recorded once per test session; each test gets its own
Debugger on it, writing to string buffers.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from replayvm.debugger.console import Console
from replayvm.debugger.debugger import Debugger
from replayvm.guests import catalog
from replayvm.host import BytesSource, Host
from replayvm.machine import MachineConfig
from replayvm.session.recorder import Recorder

FIXED_CLOCK_NS = 1_800_000_000_000_000_000  # the same RTC reading in every run


def record(path: Path, name: str, *, input_data: bytes | None = None, sync_interval: int = 1 << 17) -> Path:
    guest = catalog.get(name)
    if input_data is None and guest.input_path is not None:
        input_data = guest.input_path.read_bytes()
    source = BytesSource(input_data) if input_data is not None else None
    recorder = Recorder(
        path,
        guest.image.read_bytes(),
        MachineConfig(64, guest.cmdline),
        host=Host(source, wall_clock_ns=FIXED_CLOCK_NS),
        image_name=name,
        sync_interval=sync_interval,
        fsync=False,
    )
    recorder.run()
    return path


@pytest.fixture(scope="session")
def demo_rvr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("rec") / "demo.rvr", "demo")


class Driven:
    """A Debugger whose output is captured: ``run(line...)`` returns what it printed."""

    def __init__(self, path: Path) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.dbg = Debugger.open(path, console=Console(self.out, self.err))
        self.failed = 0

    def run(self, *lines: str) -> str:
        start = len(self.out.getvalue())
        for line in lines:
            if not self.dbg.execute(line, repeat=False):
                self.failed += 1
        return self.out.getvalue()[start:]

    def error(self, line: str) -> str:
        """Run a command that must fail; its one error line."""
        start = len(self.err.getvalue())
        assert not self.dbg.execute(line, repeat=False), line
        text = self.err.getvalue()[start:]
        assert text.endswith("\n") and text.count("\n") == 1, text
        assert "Traceback" not in text
        return text.rstrip("\n")

    def registers(self) -> dict[str, int]:
        return self.dbg.session.registers()


@pytest.fixture
def debugger(demo_rvr: Path) -> Callable[[], Driven]:
    return lambda: Driven(demo_rvr)


@pytest.fixture
def demo(demo_rvr: Path) -> Driven:
    return Driven(demo_rvr)


@pytest.fixture(scope="session")
def interrupted_rvr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """demo, stopped the way Ctrl-C stops a recording: after the guest's third output."""
    guest = catalog.get("demo")
    path = tmp_path_factory.mktemp("rec") / "interrupted.rvr"
    outputs = []

    def serial_out(data: bytes) -> None:
        outputs.append(data)
        if len(outputs) == 3:
            recorder.machine.request_stop("interrupted", 130, "recording stopped by Ctrl-C")

    recorder = Recorder(
        path,
        guest.image.read_bytes(),
        MachineConfig(64, guest.cmdline),
        host=Host(wall_clock_ns=FIXED_CLOCK_NS),
        serial_out=serial_out,
        image_name="demo",
        fsync=False,
    )
    assert recorder.run().reason == "interrupted"
    return path

"""pytest plugin: every ``*.rvr`` file is a regression test (``pytest recordings/``).

Each recording is replayed in a fresh machine in the test process; it fails
with a readable report (icount, RIP and symbol, last events, output diff)
when the replay diverges or an expectation stored with it is not met.
``--replayvm-bless`` deliberately re-records the expectations from what the
replay did. Works with pytest-xdist: each recording is an independent item.

The ``replayvm_session`` fixture opens a recording in the same debugger
session the REPL uses, for tests that drive it from Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from replayvm.debugger.symbols import SymbolTable
from replayvm.session.recording import KERNEL_BLOB
from replayvm.session.timeline import DebuggerError, DebugSession, Stop
from replayvm.testing.check import CheckResult, bless, replay_and_check


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("replayvm")
    group.addoption(
        "--replayvm-bless",
        action="store_true",
        default=False,
        help="re-record the expectations of replayed .rvr recordings from this replay",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "recording: a ReplayVM recording replayed as a test")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".rvr":
        return RecordingFile.from_parent(parent, path=file_path)
    return None


class RecordingFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield RecordingItem.from_parent(self, name="replay")


class RecordingFailure(Exception):
    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.explain())
        self.result = result


class RecordingItem(pytest.Item):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.add_marker("recording")

    def runtest(self) -> None:
        result = replay_and_check(self.path)
        if self.config.getoption("replayvm_bless") and result.divergence is None:
            bless(self.path, result)
            return
        if not result.ok:
            raise RecordingFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: object = None) -> str:
        if isinstance(excinfo.value, RecordingFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)  # type: ignore[arg-type]

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"replay {self.path.name}"


class RecordingDriver:
    """A recording under test: the DebugSession plus the image's symbols."""

    def __init__(self, path: str | Path) -> None:
        self.session = DebugSession.open(path)
        self.symbols = SymbolTable.from_elf(self.session.replayer.reader.blob(KERNEL_BLOB))

    def address(self, symbol: str) -> int:
        address = self.symbols.address_of(symbol)
        if address is None:
            raise DebuggerError(f'No symbol "{symbol}" in current context.')
        return address

    def run_to(self, symbol: str) -> Stop:
        """Continue to the next call of ``symbol``."""
        bp = self.session.add_breakpoint(self.address(symbol))
        try:
            return self.session.cont()
        finally:
            self.session.delete(bp.number)

    def register(self, name: str) -> int:
        return self.session.registers()[name]

    def read(self, where: int | str, length: int = 8) -> bytes:
        address = self.address(where) if isinstance(where, str) else where
        return self.session.read_memory(address, length)

    def where(self) -> str | None:
        return self.symbols.function_name(self.session.vcpu.rip)


@pytest.fixture
def replayvm_session() -> Iterator[type[RecordingDriver]]:
    """Open recordings: ``drv = replayvm_session("bug.rvr"); drv.run_to("kmain")``."""
    yield RecordingDriver

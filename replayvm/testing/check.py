"""Replay a recording and check what its reporter expected (plugin, CLI, bless).

One function does it for `pytest recordings/`, `replayvm replay` and
`--replayvm-bless`, so a recording means the same thing everywhere: it
replays without divergence and its stored expectations hold.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from replayvm.debugger.symbols import SymbolTable
from replayvm.engine.memory import GuestMemoryError
from replayvm.engine.paging import PageFault, translate
from replayvm.errors import DivergenceError
from replayvm.log import RecordingReader, RecordingWriter
from replayvm.machine import Machine
from replayvm.session.recording import KERNEL_BLOB
from replayvm.session.replayer import Replayer, ReplayReport, describe
from replayvm.testing.expectations import (
    REPORT_TAG,
    Expectation,
    Outcome,
    OutputCapture,
    Report,
    build_report,
    check,
    read_report,
)


@dataclass(slots=True)
class CheckResult:
    path: Path
    report: Report | None
    outcome: Outcome | None = None
    divergence: DivergenceError | None = None
    failures: list[str] = field(default_factory=list)
    symbols: SymbolTable | None = None
    last_events: list[str] = field(default_factory=list)
    replay: ReplayReport | None = None
    verify_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.divergence is None and not self.failures

    def explain(self) -> str:
        """A readable failure report: where, what, and the events before it."""
        lines = [f"recording {self.path.name}"]
        if self.report is not None and self.report.note:
            lines.append(f"  note: {self.report.note}")
        if self.divergence is not None:
            d = self.divergence
            lines.append(f"  DIVERGED at icount {d.icount}" if d.icount is not None else "  DIVERGED")
            for label, rip in (("expected", d.expected_rip), ("actual", d.actual_rip)):
                if rip is not None:
                    lines.append(f"    {label} RIP {rip:#x} {self._where(rip)}")
            lines.append(f"  {d}")
        for failure in self.failures:
            lines.append("  expectation not met: " + failure.replace("\n", "\n    "))
        if self.last_events:
            lines.append("  last events: " + "; ".join(self.last_events))
        return "\n".join(lines)

    def _where(self, rip: int) -> str:
        hit = self.symbols.symbolize(rip) if self.symbols else None
        return f"<{hit[0]}+{hit[1]:#x}>" if hit else ""


def replay_and_check(
    path: Path, *, on_output: Callable[[bytes], None] | None = None, verify: bool = False
) -> CheckResult:
    output = OutputCapture()

    def out(data: bytes) -> None:
        output(data)
        if on_output is not None:
            on_output(data)

    replayer = Replayer(path, serial_out=out, verify=verify)
    report = read_report(replayer.reader)
    symbols = SymbolTable.from_elf(replayer.reader.blob(KERNEL_BLOB))
    result = CheckResult(Path(path), report, symbols=symbols)
    try:
        result.replay = replayer.run()
    except DivergenceError as e:
        result.divergence = e
        result.last_events = [describe(ev) for ev in replayer.history()]
        return result
    finally:
        result.verify_lines = replayer.verify_lines
    run = result.replay.result
    result.outcome = Outcome(
        run.status, run.reason, output, replayer.machine.vcpu.last_exception, symbols.function_name
    )
    if report is not None and any(e.kind == "final" for e in report.expectations):
        result.outcome.evaluate = final_state_evaluator(replayer.machine, replayer.reader.blob(KERNEL_BLOB))
    if report is not None:
        for expectation in report.expectations:
            failure = check(expectation, result.outcome, report)
            if failure is not None:
                result.failures.append(f"{expectation}: {failure}")
    return result


class MachineView:
    """The two things an expression needs of a stopped machine: registers and
    (virtual) memory, read without side effects."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def registers(self) -> dict[str, int]:
        vcpu = self.machine.vcpu
        return vcpu.registers() | vcpu.system_registers()

    def read_memory(self, address: int, length: int) -> bytes:
        ram, out = self.machine.ram, bytearray()
        paging = self.machine.vcpu.paging_regs()
        try:
            while len(out) < length:
                chunk = min(length - len(out), 0x1000 - ((address + len(out)) & 0xFFF))
                paddr = translate(paging, address + len(out), ram.read_int).paddr
                out += ram.read(paddr, chunk)
        except (PageFault, GuestMemoryError):
            raise DivergenceError(f"Cannot access memory at address {address + len(out):#x}") from None
        return bytes(out)


def final_state_evaluator(machine: Machine, image: bytes) -> Callable[[str], int]:
    """Evaluate debugger expressions (``$rax == 0``, ``*(int *)&ticks > 3``) in the final state."""
    from replayvm.debugger.context import SessionContext
    from replayvm.debugger.expr import evaluate

    context = SessionContext(MachineView(machine), SymbolTable.from_elf(image), [])  # type: ignore[arg-type]
    return lambda text: evaluate(text, context.fresh()).unsigned


def bless(path: Path, result: CheckResult) -> Report:
    """Rewrite the recording's expectations from what this replay did."""
    if result.outcome is None:
        raise DivergenceError(f"{path}: cannot bless a recording that does not replay")
    old = result.report or Report()
    kinds = [Expectation(e.kind, e.value if e.kind in ("output-contains", "final") else None) for e in old.expectations]
    new = build_report(old.note, kinds, result.outcome)
    with RecordingReader(path) as reader:
        config, end = reader.header.config, reader.end
        blobs = [(name, reader.blob(name)) for name in reader.blobs]
        events = list(reader.events())
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, suffix=".rvr.tmp")
    os.close(fd)
    try:
        writer = RecordingWriter(tmp, config, blobs)
        for event in events:
            writer.append(event)
        writer.append_ancillary(REPORT_TAG, new.to_bytes())
        assert end is not None
        writer.close(end)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return new

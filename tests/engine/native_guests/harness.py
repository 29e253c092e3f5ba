"""Run a guest under a chosen counting engine and log every exit with its icount.

Used by the differential tests (tests/engine/test_native*.py): the same
guest runs under count mode and under the native counter; the logs, the exit
statistics and the final digests must be identical.

Until ``Vcpu`` takes an engine (issue 9 wiring), :func:`engine` installs the
counter the way the wiring will: by replacing the name ``Vcpu.__init__``
uses to create its counter, so the counter exists before any hook. With the
native engine it also routes the vCPU's interrupt window to the counter
(``set_interrupt_window``) instead of a second UC_HOOK_BLOCK hook.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import replayvm.engine.vcpu as vcpu_module
from replayvm.engine.icount import make_counter
from replayvm.host import BytesSource, Host
from replayvm.machine import Machine, MachineConfig

HERE = Path(__file__).resolve().parent
WALL_CLOCK_NS = 1_790_000_000 * 10**9
GCC = shutil.which("gcc")
LD = shutil.which("ld")


@contextlib.contextmanager
def engine(name: str) -> Iterator[None]:
    """Machines created inside use the ``name`` counter ("count" or "native")."""
    if hasattr(vcpu_module, "make_counter"):  # after the wiring: Vcpu calls make_counter(uc, ...)
        attr, original = "make_counter", vcpu_module.make_counter
        replacement = lambda uc, *args, **kwargs: make_counter(uc, name)
    else:
        attr, original = "CountModeCounter", vcpu_module.CountModeCounter
        replacement = lambda uc: make_counter(uc, name)
    setattr(vcpu_module, attr, replacement)
    try:
        yield
    finally:
        setattr(vcpu_module, attr, original)


def instrument(machine: Machine, log: list[tuple]) -> None:
    """Log (kind, detail, icount) at every exit the VMM handles."""
    vcpu = machine.vcpu
    bus = machine.bus
    read, write = bus.read, bus.write

    def bus_read(port: int, size: int) -> int:
        value = read(port, size)
        log.append(("in", port, vcpu.current_icount(), value))
        return value

    def bus_write(port: int, size: int, value: int) -> None:
        log.append(("out", port, vcpu.current_icount(), value))
        write(port, size, value)

    bus.read, bus.write = bus_read, bus_write  # type: ignore[method-assign]

    tsc = vcpu.tsc

    def logged_tsc() -> int:
        value = tsc()
        log.append(("tsc", 0, vcpu.current_icount(), value))
        return value

    vcpu.tsc = logged_tsc  # type: ignore[method-assign]

    query = vcpu.cpuid.query

    def logged_query(leaf: int, sub: int) -> tuple[int, int, int, int]:
        log.append(("cpuid", leaf, vcpu.current_icount(), sub))
        return query(leaf, sub)

    vcpu.cpuid.query = logged_query  # type: ignore[method-assign]

    inject = vcpu.injector.inject

    def logged_inject(ctx, paging, event, return_rip):
        log.append(("event", event.vector, vcpu.current_icount(), return_rip))
        return inject(ctx, paging, event, return_rip)

    vcpu.injector.inject = logged_inject  # type: ignore[method-assign]

    run = vcpu.run

    def logged_run(budget: int) -> object:
        reason = run(budget)
        log.append(("slice", budget, vcpu.icount, str(reason)))
        return reason

    vcpu.run = logged_run  # type: ignore[method-assign]


@dataclass
class Trace:
    """What one run under one engine did: exits (icount, kind, detail), result,
    serial output, CPU and machine digests, the native counter's statistics."""

    log: list[tuple] = field(default_factory=list)
    result: object = None
    output: bytes = b""
    digest: str = ""
    state: bytes = b""
    stats: dict[str, int] = field(default_factory=dict)


def run_traced(
    image: bytes,
    engine_name: str,
    *,
    cmdline: str = "",
    input_data: bytes | None = None,
    max_slice: int | None = None,
    max_insns: int | None = None,
    log_exits: bool = True,
    watch_paging: bool = False,
) -> Trace:
    trace = Trace()
    out = bytearray()
    kwargs = {} if max_slice is None else {"max_slice": max_slice}
    with engine(engine_name):
        machine = Machine(
            MachineConfig(64, cmdline),
            image,
            host=Host(BytesSource(input_data) if input_data is not None else None, wall_clock_ns=WALL_CLOCK_NS),
            serial_out=out.extend,
            **kwargs,
        )
    assert machine.vcpu.counter.name == engine_name, "the engine was not installed"
    if log_exits:
        instrument(machine, trace.log)
    if watch_paging:
        machine.vcpu.watch_address_space(True)  # as a debugger with a virtual watchpoint does
    trace.result = machine.run(max_insns=max_insns)
    trace.output = bytes(out)
    trace.digest = machine.vcpu.digest()
    trace.state = machine.state_digest(ram=True)
    if engine_name == "native":
        trace.stats = machine.vcpu.counter.stats()
    machine.vcpu.counter = None  # type: ignore[assignment]
    return trace


def build_torture(out_dir: Path) -> Path:
    """Assemble and link native_guests/torture.S with the system gcc and ld."""
    if GCC is None or LD is None:
        raise FileNotFoundError("gcc and ld are needed to build the test guests")
    obj = out_dir / "torture.o"
    elf = out_dir / "torture.elf"
    subprocess.run([GCC, "-m64", "-c", str(HERE / "torture.S"), "-o", str(obj)], check=True, capture_output=True)
    flags = ["-nostdlib", "--build-id=none"]
    probe = subprocess.run([LD, "--no-warn-rwx-segments", "--version"], capture_output=True, check=False)
    if probe.returncode == 0:
        flags.append("--no-warn-rwx-segments")
    subprocess.run(
        [LD, *flags, "-m", "elf_x86_64", "-T", str(HERE / "torture.ld"), "-o", str(elf), str(obj)],
        check=True,
        capture_output=True,
    )
    return elf

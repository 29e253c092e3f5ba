"""Whole guests under both engines: every exit at the same icount (issue 9).

Each guest runs through :class:`~replayvm.machine.Machine` once with count
mode and once with the native counter. Every exit the VMM handles -- port
I/O, CPUID, RDTSC, exceptions and interrupts injected, slice ends -- is
logged with ``current_icount()`` (see ``native_guests/harness.py``); the
logs, the serial output, the exit statistics, the CPU digest and the full
machine digest (``state_digest(ram=True)``) must all be identical.

Guests: every bundled guest (``replayvm/guests/catalog.py``), the
independent kernels of ``tests/kernels`` (ring 3, IST, #DF, 8259/8254 in
depth, an ELF32 image), and ``native_guests/torture.S``, written for this
issue (self-modifying code, one virtual address in two address spaces,
faults on data and instruction fetch in the middle of blocks, timer
interrupts, one-instruction loops, string instructions, I/O in the middle
of blocks), also with small fixed slice sizes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from native_guests.harness import GCC, LD, build_torture, run_traced

from replayvm.engine.native import native_available
from replayvm.guests import catalog

AVAILABLE, WHY = native_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"native counter unavailable: {WHY}")

KERNELS_SRC = Path(__file__).resolve().parents[1] / "kernels" / "src"
KERNEL_CFLAGS = [
    "-std=gnu11", "-O2", "-m64", "-ffreestanding", "-nostdinc", "-fno-pic", "-fno-pie", "-mno-red-zone",
    "-mgeneral-regs-only", "-fno-stack-protector", "-fcf-protection=none", "-fno-asynchronous-unwind-tables",
    "-fno-tree-loop-distribute-patterns",
]  # fmt: skip


def assert_same_run(image: bytes, **kwargs: object) -> dict[str, int]:
    count = run_traced(image, "count", **kwargs)  # type: ignore[arg-type]
    native = run_traced(image, "native", **kwargs)  # type: ignore[arg-type]
    assert native.output == count.output
    assert native.result.icount == count.result.icount  # type: ignore[attr-defined]
    assert native.result.reason == count.result.reason  # type: ignore[attr-defined]
    for i, (a, b) in enumerate(zip(count.log, native.log)):
        assert a == b, f"exit #{i}: count mode {a}, native {b}"
    assert len(native.log) == len(count.log)
    assert native.result.exits == count.result.exits  # type: ignore[attr-defined]
    assert native.digest == count.digest
    assert native.state == count.state
    assert native.stats["inexact"] == 0 and native.stats["fallbacks"] == 0
    return native.stats


# crc computes for 1.6e8 instructions; its first 4e7 cover all it does (the CRC loop, landings).
MAX_INSNS = {"crc": 40_000_000}


@pytest.mark.parametrize("name", catalog.names())
def test_bundled_guest_exits_at_the_same_icounts(name: str) -> None:
    guest = catalog.get(name)
    input_data = guest.input_path.read_bytes() if guest.input_path else None
    assert_same_run(
        guest.image.read_bytes(), cmdline=guest.cmdline, input_data=input_data, max_insns=MAX_INSNS.get(name)
    )


@pytest.fixture(scope="module")
def torture(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if GCC is None or LD is None:
        pytest.skip("gcc and ld are needed to build the test guest (not on PATH)")
    return build_torture(tmp_path_factory.mktemp("native-guests")).read_bytes()


def test_torture_guest_exits_at_the_same_icounts(torture: bytes) -> None:
    stats = assert_same_run(torture)
    # It did what it is for: precise-SMC re-executions, exit checks after
    # stopping instructions, landings at timer deadlines, interrupt windows.
    assert stats["smc"] > 0 and stats["exit_checks"] > 0 and stats["landings"] > 0 and stats["window_stops"] > 0


def test_torture_guest_watching_the_address_space(torture: bytes) -> None:
    # phase_alias loads CR3 80 times: a slice ends after each (the same under both engines).
    stats = assert_same_run(torture, watch_paging=True)
    assert stats["paging_stops"] >= 80


@pytest.mark.parametrize("max_slice", [3, 97])
def test_torture_guest_with_small_slices(torture: bytes, max_slice: int) -> None:
    stats = assert_same_run(torture, max_slice=max_slice)
    assert stats["landings"] > 0


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if GCC is None or LD is None:
        pytest.skip("gcc and ld are needed to build the independent kernels (not on PATH)")
    out = tmp_path_factory.mktemp("independent-kernels")

    def run(*argv: str) -> None:
        subprocess.run(argv, cwd=out, check=True, capture_output=True)

    ld = [LD, "-nostdlib", "--build-id=none"]
    if subprocess.run([LD, "--no-warn-rwx-segments", "--version"], capture_output=True, check=False).returncode == 0:
        ld.append("--no-warn-rwx-segments")
    src = KERNELS_SRC
    run(GCC, "-m32", "-c", str(src / "polled.S"), "-o", "polled.o")
    run(*ld, "-m", "elf_i386", "-T", str(src / "polled.ld"), "-o", "polled.elf", "polled.o")
    run(GCC, "-m64", "-c", str(src / "irqs.S"), "-o", "irqs.o")
    run(*ld, "-m", "elf_x86_64", "-T", str(src / "irqs.ld"), "-o", "irqs.elf", "irqs.o")
    run(GCC, "-m64", "-c", str(src / "faults_entry.S"), "-o", "faults_entry.o")
    run(GCC, *KERNEL_CFLAGS, "-c", str(src / "faults_main.c"), "-o", "faults_main.o")
    run(*ld, "-m", "elf_x86_64", "-T", str(src / "faults.ld"), "-o", "faults.elf", "faults_entry.o", "faults_main.o")
    return {name: (out / f"{name}.elf").read_bytes() for name in ("polled", "irqs", "faults")}


@pytest.mark.parametrize(
    ("name", "cmdline"),
    [("polled", "alpha=1 beta=two  gamma last="), ("irqs", ""), ("irqs", "sti-window"), ("faults", "console=ttyS0")],
)
def test_independent_kernel_exits_at_the_same_icounts(kernels: dict[str, bytes], name: str, cmdline: str) -> None:
    assert_same_run(kernels[name], cmdline=cmdline, max_insns=200_000_000)


def record_then_replay(tmp_path: Path, image: bytes, record_with: str, replay_with: str, **kwargs: object) -> None:
    from native_guests.harness import WALL_CLOCK_NS, engine

    from replayvm.host import BytesSource, Host
    from replayvm.machine import MachineConfig
    from replayvm.session.recorder import Recorder
    from replayvm.session.replayer import Replayer

    path = tmp_path / f"{record_with}.rvr"
    input_data = kwargs.get("input_data")
    host = Host(BytesSource(input_data) if input_data is not None else None, wall_clock_ns=WALL_CLOCK_NS)
    with engine(record_with):
        recorder = Recorder(path, image, MachineConfig(64, str(kwargs.get("cmdline", ""))), host=host, fsync=False)
    assert recorder.machine.vcpu.counter.name == record_with
    recorded = recorder.run()
    with engine(replay_with):
        replayer = Replayer(path)
    assert replayer.machine.vcpu.counter.name == replay_with
    report = replayer.run()  # raises DivergenceError at the first SYNC that differs
    assert report.syncs_checked > 0
    assert (report.result.icount, report.result.status) == (recorded.icount, recorded.status)


@pytest.mark.parametrize(("record_with", "replay_with"), [("count", "native"), ("native", "count")])
@pytest.mark.parametrize("name", ["echo", "timer", "pagefault"])
def test_recording_made_with_one_engine_replays_with_the_other(
    tmp_path: Path, name: str, record_with: str, replay_with: str
) -> None:
    guest = catalog.get(name)
    input_data = guest.input_path.read_bytes() if guest.input_path else None
    record_then_replay(
        tmp_path, guest.image.read_bytes(), record_with, replay_with, cmdline=guest.cmdline, input_data=input_data
    )


@pytest.mark.parametrize(("record_with", "replay_with"), [("count", "native"), ("native", "count")])
def test_torture_recording_replays_with_the_other_engine(
    tmp_path: Path, torture: bytes, record_with: str, replay_with: str
) -> None:
    record_then_replay(tmp_path, torture, record_with, replay_with)

"""`replayvm bench --linux`: Debian's kernel to a shell prompt, on ReplayVM and on QEMU, in one run.

The session is the Linux test's (tests/linux): the cloud kernel and the test
initramfs (``console=ttyS0``, 128 MiB) boot, /init prints cpuinfo, uname and
an awk sum, the shell gets :data:`SESSION_COMMANDS` typed at its prompt, the
last one (``exit``) ends it and init's ``reboot -f`` stops the machine (QEMU:
``-no-reboot``). ReplayVM runs it three ways -- run, record, replay -- and
each side reports the whole session and the part up to the first shell
prompt, whose exact icount the machine reports (:meth:`Machine.watch_output`).

QEMU TCG runs the same kernel, initramfs and command line where it is
installed. It does not count instructions: its MIPS are ReplayVM's
instruction counts over QEMU's wall time, and that wall time includes
SeaBIOS and the real-time waits (timers, HLT) that ReplayVM skips in virtual
time. Benchmarks print numbers; tests never assert on them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from replayvm.guests.linux_assets import APPEND, MEMORY_MIB, LinuxAssets
from replayvm.host import BytesSource, Host, converse, monotonic
from replayvm.machine import Machine, MachineConfig, RunResult
from replayvm.session.recorder import Recorder
from replayvm.session.replayer import Replayer

PROMPT = b"~ # "  # the test /init runs its shell in /root
SESSION_COMMANDS = ("echo hello from the shell", "ls /", "cat /proc/cmdline", "echo $((6 * 7))", "exit")
# Run and record boot with the same RTC time, so that their instruction counts can agree.
WALL_CLOCK_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
QEMU = "qemu-system-x86_64"
QEMU_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class LinuxSide:
    name: str
    instructions: int
    seconds: float
    prompt_instructions: int | None  # icount of the first prompt's last byte
    prompt_seconds: float | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return dict(
            asdict(self),
            seconds=round(self.seconds, 3),
            prompt_seconds=_round(self.prompt_seconds),
            mips=_mips(self.instructions, self.seconds),
            prompt_mips=_mips(self.prompt_instructions, self.prompt_seconds),
        )


def _round(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def _mips(instructions: int | None, seconds: float | None) -> float | None:
    if instructions is None or not seconds:
        return None
    return round(instructions / seconds / 1e6, 1)


def session_input() -> bytes:
    return "".join(c + "\n" for c in SESSION_COMMANDS).encode()


def _live_host() -> Host:
    return Host(BytesSource(session_input(), paced=True), wall_clock_ns=WALL_CLOCK_NS)


def _timed(name: str, machine: Machine, run: Callable[[], RunResult]) -> LinuxSide:
    seen: list[tuple[int, float]] = []
    machine.watch_output(PROMPT, lambda icount: seen.append((icount, monotonic())))
    t0 = monotonic()
    result = run()
    seconds = monotonic() - t0
    prompt_icount, prompt_s = (seen[0][0], seen[0][1] - t0) if seen else (None, None)
    return LinuxSide(name, result.icount, seconds, prompt_icount, prompt_s, result.reason)


def run_replayvm_sides(kernel: bytes, initrd: bytes) -> tuple[list[LinuxSide], str]:
    """run, record and replay of the session, in that order, and the counting engine."""
    config = MachineConfig(MEMORY_MIB, APPEND, initrd)
    machine = Machine(config, kernel, host=_live_host(), image_name="vmlinuz")
    sides = [_timed("run", machine, machine.run)]
    with tempfile.TemporaryDirectory(prefix="replayvm-bench-") as tmp:
        path = Path(tmp) / "linux.rvr"
        recorder = Recorder(path, kernel, config, host=_live_host(), image_name="vmlinuz")
        sides.append(_timed("record", recorder.machine, recorder.run))
        replayer = Replayer(path)
        sides.append(_timed("replay", replayer.machine, lambda: replayer.run().result))
    return sides, machine.vcpu.counter.name


def qemu_command(assets: LinuxAssets) -> list[str]:
    """What tests/linux runs QEMU with, TCG named explicitly."""
    return [
        QEMU, "-M", "pc", "-accel", "tcg", "-cpu", "qemu64,-apic", "-m", str(MEMORY_MIB), "-no-reboot",
        "-display", "none", "-serial", "stdio", "-monitor", "none",
        "-kernel", str(assets.vmlinuz), "-initrd", str(assets.initrd), "-append", APPEND,
    ]  # fmt: skip


def run_qemu(assets: LinuxAssets, instructions: int, prompt_instructions: int | None) -> dict[str, object]:
    """QEMU TCG on the same session; its MIPS use ReplayVM's instruction counts."""
    command = qemu_command(assets)
    talk = converse(command, [c.encode() + b"\n" for c in SESSION_COMMANDS], PROMPT, QEMU_TIMEOUT_S)
    finished = not talk.timed_out and talk.typed == len(SESSION_COMMANDS) and b"reboot: Restarting" in talk.output
    return {
        "command": command,
        "prompt_seconds": _round(talk.prompt_seconds),
        "seconds": round(talk.seconds, 3),
        "finished": finished,
        "prompt_mips": _mips(prompt_instructions, talk.prompt_seconds),
        "mips": _mips(instructions, talk.seconds) if finished else None,
    }


def bench_linux(assets: LinuxAssets, *, qemu: bool = True) -> dict[str, object]:
    kernel, initrd = assets.vmlinuz.read_bytes(), assets.initrd.read_bytes()
    sides, engine = run_replayvm_sides(kernel, initrd)
    run, record, replay = sides
    report: dict[str, object] = {
        "kernel": assets.kernel_package,
        "append": APPEND,
        "memory_mib": MEMORY_MIB,
        "engine": engine,
        "prompt": PROMPT.decode(),
        "commands": list(SESSION_COMMANDS),
        "sides": [s.as_dict() for s in sides],
        "record_time_vs_run": round(record.seconds / run.seconds, 3) if run.seconds else None,
        "replay_time_vs_run": round(replay.seconds / run.seconds, 3) if run.seconds else None,
        "qemu": None,
    }
    if not qemu:
        report["qemu_absent"] = "not asked for"
    elif shutil.which(QEMU) is None:
        report["qemu_absent"] = f"{QEMU} is not installed"
    else:
        report["qemu"] = run_qemu(assets, run.instructions, run.prompt_instructions)
    return report

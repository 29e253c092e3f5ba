"""Debian's cloud kernel + a busybox initramfs, end to end (issue 10).

One ReplayVM boot is recorded with the installed command and scripted input
(the shell's commands); the recording is replayed in a fresh process and must
give byte-identical serial output and the same final state; and the same
kernel and initramfs on QEMU must print the same user-space session.

The assets are Debian packages fetched by ``python -m replayvm.guests.linux_assets``
(CI runs it); without them these tests skip.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from replayvm.benchlinux import SESSION_COMMANDS as COMMANDS
from replayvm.guests.linux_assets import APPEND, MEMORY_MIB, find_assets

pytestmark = [pytest.mark.slow, pytest.mark.linux]

ASSETS = find_assets()
if ASSETS is None:
    pytest.skip(
        "Linux assets absent: fetch them with `python -m replayvm.guests.linux_assets`", allow_module_level=True
    )

# A kernel log line, wherever it starts: an asynchronous message can land in the
# middle of a line the shell is printing (QEMU's "tsc: Refined TSC clocksource...").
KERNEL_MESSAGE = re.compile(r"\[\s*\d+\.\d+\] [^\n]*\n")


def replayvm(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "replayvm", *args], cwd=cwd, capture_output=True, timeout=1200, check=False
    )


def without_kernel_messages(serial: bytes) -> str:
    text = serial.decode("utf-8", "replace").replace("\r\n", "\n").replace("\x1b[6n", "")
    return KERNEL_MESSAGE.sub("", text)


def session_lines(serial: bytes) -> list[str]:
    """The user-space session: from init's start to the reset, without the
    hardware-dependent /proc/cpuinfo block and without kernel log lines."""
    text = serial.decode("utf-8", "replace")
    start = text.index("Run /init as init process")
    lines = without_kernel_messages(text[start:].split("\n", 1)[1].encode()).split("\n")
    cut_from, cut_to = lines.index("== cpuinfo") + 1, lines.index("== uname")
    return [line.rstrip() for line in lines[:cut_from] + lines[cut_to:] if line.strip()]


def qemu_session(assets, commands: Sequence[str], timeout: float = 300.0) -> bytes:  # type: ignore[no-untyped-def]
    """Boot on QEMU and type each command when the shell prompt shows, as a person would."""
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-M", "pc", "-cpu", "qemu64,-apic", "-m", str(MEMORY_MIB), "-no-reboot",
         "-display", "none", "-serial", "stdio", "-monitor", "none",
         "-kernel", str(assets.vmlinuz), "-initrd", str(assets.initrd), "-append", APPEND],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert qemu.stdin is not None and qemu.stdout is not None
    out = bytearray()
    pending = list(commands)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([qemu.stdout], [], [], 2.0)
            if ready:
                chunk = os.read(qemu.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
            elif pending and without_kernel_messages(bytes(out)).endswith("# "):
                qemu.stdin.write(pending.pop(0).encode() + b"\n")
                qemu.stdin.flush()
    finally:
        qemu.kill()
        qemu.wait()
    return bytes(out)


def test_linux_session_records_replays_exactly_and_matches_qemu(tmp_path: Path) -> None:
    """One test, so that one xdist worker boots Linux twice (record, replay)
    instead of every worker recording its own copy."""
    assert ASSETS is not None
    (tmp_path / "input.txt").write_text("".join(c + "\n" for c in COMMANDS))
    record = replayvm(
        "record", str(ASSETS.vmlinuz), "--initrd", str(ASSETS.initrd), "--append", APPEND,
        "--memory", str(MEMORY_MIB), "--input", "input.txt", "-o", "linux.rvr", cwd=tmp_path,
    )  # fmt: skip
    out, err = record.stdout.decode("utf-8", "replace"), record.stderr.decode()
    assert record.returncode == 0, err

    # The boot reaches user space, /init's output, the shell and its commands, then the reset.
    assert "Linux version 6.1" in out
    assert "model name\t: ReplayVM virtual CPU @ 1.00GHz" in out
    assert "sum of squares 1..1000 = 333833500" in out
    lines = session_lines(record.stdout)
    assert "~ # echo hello from the shell" in lines and "hello from the shell" in lines
    assert "42" in lines and "console=ttyS0" in lines
    assert "== bye" in lines
    assert "reboot: Restarting system" in out
    assert "guest requested a reset (i8042)" in err

    # A fresh process replays it byte for byte, with the same final state.
    replay = replayvm("replay", "linux.rvr", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr.decode()
    assert replay.stdout == record.stdout
    assert "replay matched the recording" in replay.stderr.decode()

    # Debug it backwards, inside the kernel: a late position, reverse-stepi then stepi
    # gives the same registers, and a kernel breakpoint is hit going backwards.
    from replayvm.session.timeline import DebugSession

    session = DebugSession.open(tmp_path / "linux.rvr", checkpoint_interval=50_000_000)
    end = session.recorded_end
    assert end is not None
    late = end - 2_000_000
    session.seek(late)
    regs = session.registers()
    assert regs["rip"] >= 0xFFFF_FFFF_8000_0000 or regs["cs"] & 3  # kernel text, or user space
    session.reverse_stepi()
    session.stepi()
    assert (session.icount, session.registers()) == (late, regs)
    session.seek(end - 100)
    bp = session.add_breakpoint(regs["rip"])
    back = session.reverse_cont()
    assert (back.reason, back.rip) == ("breakpoint", regs["rip"]) and late <= back.icount < end - 100
    session.delete(bp.number)

    # The last write to the stack slot at RSP before `late`, found backwards by a
    # watchpoint on its virtual address (followed through the kernel's page tables:
    # KASLR, vmalloc'd stacks, PTI's two roots) and by one on its physical address.
    session.seek(late)
    slot = regs["rsp"]
    virtual = session.add_watchpoint(slot, 8, "write")
    written = session.reverse_cont()
    session.delete(virtual.number)
    assert written.reason == "watchpoint" and written.icount < late
    physical = session.add_watchpoint(session.translate(slot), 8, "write", physical=True)
    session.seek(late)
    again = session.reverse_cont()
    session.delete(physical.number)
    assert (again.reason, again.icount, again.rip) == ("watchpoint", written.icount, written.rip)

    # QEMU prints the same user-space session for the same kernel, initramfs and commands.
    if shutil.which("qemu-system-x86_64") is not None:
        assert session_lines(qemu_session(ASSETS, COMMANDS)) == lines

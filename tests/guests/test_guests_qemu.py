"""The bundled guests on QEMU, the reference PC that rv-pc must match (DESIGN.md §2).

Each guest boots as ``qemu-system-x86_64 -M pc -kernel guest.elf`` with
isa-debug-exit; its serial output minus ``[var]`` lines must equal
``expected/NAME.out`` and its exit status ``expected/NAME.status``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest

from replayvm.guests import catalog

QEMU = "qemu-system-x86_64"
SEABIOS_BANNER = b"Booting from ROM.."
TIMEOUT_S = 60

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not on PATH"),
]


def qemu_argv(image: Path, cmdline: str) -> list[str]:
    return [
        QEMU,
        "-M", "pc",
        "-accel", "tcg",
        "-kernel", str(image),
        "-append", cmdline,
        "-no-reboot",
        "-m", "64",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-display", "none",
        "-serial", "stdio",
    ]  # fmt: skip


def guest_serial_output(stdout: bytes) -> bytes:
    """What the guest wrote: everything after SeaBIOS's banner, if it printed one."""
    _, banner, after = stdout.rpartition(SEABIOS_BANNER)
    return after if banner else stdout


@functools.cache
def boot(name: str) -> tuple[bytes, int]:
    """(serial output, exit status) of a guest with its default cmdline and input.

    Serial input goes through stdin: with ``-display none -serial stdio``
    (unlike ``-nographic``) SeaBIOS does not take it.
    """
    guest = catalog.get(name)
    argv = qemu_argv(guest.image, guest.cmdline)
    if guest.input_path is None:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT_S, check=False)
    else:
        with guest.input_path.open("rb") as stdin:
            proc = subprocess.run(argv, stdin=stdin, capture_output=True, timeout=TIMEOUT_S, check=False)
    return guest_serial_output(proc.stdout), proc.returncode


@pytest.mark.parametrize("name", catalog.names())
def test_guest_output_on_qemu_matches_expected(name: str) -> None:
    output, _ = boot(name)
    assert catalog.deterministic_lines(output) == catalog.expected_output(name)


@pytest.mark.parametrize("name", catalog.names())
def test_guest_exit_status_on_qemu_matches_expected(name: str) -> None:
    _, status = boot(name)
    assert status == catalog.expected_status(name)

"""The virtio guests on QEMU microvm, the reference for rv-pc's virtio-mmio devices.

QEMU 7.2's microvm (DESIGN.md §2) with ACPI off announces its virtio-mmio
transports on the kernel command line (``virtio_mmio.device=512@0xfeb00e00:12``,
slots filled from the top), and without the APIC their IRQs reach the guest
through the 8259. Two things the guests need that are not defaults:
``-global virtio-mmio.force-legacy=false`` (QEMU's virtio-mmio is a legacy,
version 1 transport unless told otherwise; the SDK drives version 2 only),
and, for virtio-console, the serial port in a file so that stdin/stdout can
be the console (``-chardev file`` has no input path in 7.2).
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from replayvm.guests import catalog

QEMU = "qemu-system-x86_64"
TIMEOUT_S = 60

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not on PATH"),
]

MICROVM = [
    "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off",
    "-cpu", "qemu64,-apic",
    "-global", "virtio-mmio.force-legacy=false",
    "-m", "64",
    "-nodefaults",
    "-no-reboot",
    "-display", "none",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
]  # fmt: skip

DEVICE_ARGS = {
    "net": ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0"],
    "rng": ["-object", "rng-builtin,id=r0", "-device", "virtio-rng-device,rng=r0"],
    "console": ["-device", "virtio-serial-device", "-chardev", "stdio,id=c0,signal=off", "-device", "virtconsole,chardev=c0"],
}  # fmt: skip


@dataclass(frozen=True)
class Run:
    serial: bytes
    console: bytes  # what the guest wrote on the virtio console
    disk: bytes
    status: int


def boot(image: Path, cmdline: str, devices: tuple[str, ...], console_input: bytes = b"") -> Run:
    with tempfile.TemporaryDirectory(prefix="replayvm-microvm-") as tmp:
        disk = Path(tmp, "disk.img")
        disk.write_bytes(bytes(catalog.VIRTIO_DISK_BYTES))
        serial_file = Path(tmp, "serial.out")
        argv = [QEMU, *MICROVM, "-kernel", str(image), "-append", cmdline]
        if "console" in devices:
            argv += ["-serial", f"file:{serial_file}"]
        else:
            argv += ["-serial", "stdio"]
        for device in devices:
            if device == "blk":
                argv += ["-drive", f"id=d0,file={disk},format=raw,if=none"]
                argv += ["-device", f"virtio-blk-device,drive=d0,serial={catalog.VIRTIO_DISK_SERIAL}"]
            else:
                argv += DEVICE_ARGS[device]
        proc = subprocess.run(argv, input=console_input, capture_output=True, timeout=TIMEOUT_S, check=False)
        if "console" in devices:
            return Run(serial_file.read_bytes(), proc.stdout, disk.read_bytes(), proc.returncode)
        return Run(proc.stdout, b"", disk.read_bytes(), proc.returncode)


@functools.cache
def boot_guest(name: str) -> Run:
    guest = catalog.get(name)
    console_input = guest.console_input_path.read_bytes() if guest.console_input_path else b""
    return boot(guest.image, guest.cmdline, guest.virtio, console_input)


VIRTIO_NAMES = [g.name for g in catalog.VIRTIO_GUESTS]


@pytest.mark.parametrize("name", VIRTIO_NAMES)
def test_virtio_guest_output_on_qemu_matches_expected(name: str) -> None:
    assert catalog.deterministic_lines(boot_guest(name).serial) == catalog.expected_output(name)


@pytest.mark.parametrize("name", VIRTIO_NAMES)
def test_virtio_guest_exit_status_on_qemu_matches_expected(name: str) -> None:
    assert boot_guest(name).status == catalog.expected_status(name)


def xorshift64_bytes(seed: int, count: int) -> bytes:
    mask = (1 << 64) - 1
    words, x = [], seed
    for _ in range(count):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        words.append(x)
    return struct.pack(f"<{count}Q", *words)


def test_blk_guest_leaves_its_pattern_on_the_disk() -> None:
    disk = boot_guest("blk").disk
    pattern = xorshift64_bytes(0x5EED, 16 * 512 // 8)
    assert disk[64 * 512 : 80 * 512] == pattern
    assert disk[: 64 * 512] == bytes(64 * 512) and disk[80 * 512 :] == bytes(len(disk) - 80 * 512)
    assert f"crc32 0x{zlib.crc32(pattern):08x}" in catalog.expected_output("blk")


def test_blk_guest_without_a_disk_says_so_and_exits_1() -> None:
    run = boot(catalog.get("blk").image, "", ())
    assert catalog.deterministic_lines(run.serial) == "blk: no virtio-blk device found (probe)\n"
    assert run.status == (1 << 1) | 1


def test_console_guest_talks_on_the_virtio_console() -> None:
    assert boot_guest("console").console == b"console: hello from virtio-console\nyou said: hello from the host\n"


def uart_vs_virtio_text(size: int) -> bytes:
    """The text the guest generates: 64-byte lines "NNNNNN " + a rotating pangram."""
    words = b"the quick brown fox jumps over the lazy dog "
    lines = []
    for n in range(size // 64):
        body = bytes(words[(n + i) % len(words)] for i in range(7, 63))
        lines.append(b"%06d " % (n % 1000000) + body + b"\n")
    return b"".join(lines)


def test_uart_vs_virtio_sends_the_same_text_both_ways() -> None:
    run = boot_guest("uart-vs-virtio")
    text = uart_vs_virtio_text(4096)
    data_lines = [line for line in run.serial.replace(b"\r\n", b"\n").splitlines(keepends=True) if line[:1].isdigit()]
    assert b"".join(data_lines) == text
    assert run.console == text
    assert f"crc32 0x{zlib.crc32(text):08x}" in catalog.expected_output("uart-vs-virtio")


@pytest.mark.parametrize("name", ["blk", "net"])
def test_virtio_guest_with_polled_completion_on_qemu(name: str) -> None:
    guest = catalog.get(name)
    run = boot(guest.image, "virtio_poll", guest.virtio)
    assert catalog.deterministic_lines(run.serial) == catalog.expected_output(name)
    assert run.status == catalog.expected_status(name)

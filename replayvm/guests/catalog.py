"""The guest kernels bundled with ReplayVM, for ``replayvm guests`` and the tests.

Each guest prints lines on COM1 and leaves through isa-debug-exit (port
0xf4), so the process exit status is ``(code << 1) | 1`` as with QEMU.
Lines that legitimately differ between hosts (the RTC date, TSC deltas)
start with ``[var] ``; everything else is identical on QEMU and on any
correct PC.  ``expected/NAME.out`` holds those other lines for the guest's
default command line (and input file), as produced by
``deterministic_lines``; ``expected/NAME.status`` holds the exit status.

The guests in :data:`VIRTIO_GUESTS` also need virtio-mmio devices
(``Guest.virtio``); they run on QEMU microvm (tests/guests) and join
:data:`GUESTS` once the rv-pc machine carries virtio devices. Their
expected output assumes the default devices: a zero-filled disk of
:data:`VIRTIO_DISK_BYTES` with serial :data:`VIRTIO_DISK_SERIAL`, a
network whose gateway 10.0.2.2 answers ARP and ping, and
``Guest.console_input_file`` as virtio-console input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from replayvm.errors import ConfigError

GUESTS_DIR = Path(__file__).resolve().parent
IMAGES_DIR = GUESTS_DIR / "images"
EXPECTED_DIR = GUESTS_DIR / "expected"

VAR_PREFIX = "[var] "

VIRTIO_DISK_BYTES = 1 << 20
VIRTIO_DISK_SERIAL = "replayvm-disk0"


@dataclass(frozen=True, slots=True)
class Guest:
    name: str
    description: str
    cmdline: str = ""
    input_file: str | None = None
    exit_code: int = 0
    virtio: tuple[str, ...] = ()  # virtio devices it needs: "blk", "net", "console", "rng"
    console_input_file: str | None = None  # bytes for the virtio console's receive queue

    @property
    def exit_status(self) -> int:
        """Process exit status under isa-debug-exit: (code << 1) | 1."""
        return (self.exit_code << 1) | 1

    @property
    def image(self) -> Path:
        return IMAGES_DIR / f"{self.name}.elf"

    @property
    def input_path(self) -> Path | None:
        return EXPECTED_DIR / self.input_file if self.input_file else None

    @property
    def console_input_path(self) -> Path | None:
        return EXPECTED_DIR / self.console_input_file if self.console_input_file else None

    @property
    def expected_output_path(self) -> Path:
        return EXPECTED_DIR / f"{self.name}.out"

    @property
    def expected_status_path(self) -> Path:
        return EXPECTED_DIR / f"{self.name}.status"


GUESTS: tuple[Guest, ...] = (
    Guest(
        "hello",
        "greets, prints its command line and the RAM in its memory map",
        cmdline="name=world",
    ),
    Guest(
        "timer",
        "8254 PIT interrupts at 100 Hz through the 8259, counted in sti;hlt; RTC and TSC",
        cmdline="ticks=50",
    ),
    Guest(
        "echo",
        "interrupt-driven COM1 input: prints each line back until 'quit' or Ctrl-D",
        input_file="echo.in",
    ),
    Guest(
        "pagefault",
        "own page tables; #PF (not present, read-only, unmapped), #DE, #UD, int3 resumed",
    ),
    Guest(
        "crc",
        "compute benchmark: CRC-32 of 16 MiB of xorshift64 data, repeated work=N times",
        cmdline="work=1",
    ),
    Guest(
        "buggy",
        "an order book with a use-after-free: #GP in order_total(), the guest panics (for bug reports)",
        cmdline="orders=6 cancel=1",
        exit_code=0x7F,
    ),
    Guest(
        "irqbug",
        "a timer handler overwrites a value the main loop audits much later (debug it backwards)",
        cmdline="rounds=5 ticks=20",
        exit_code=0x7F,
    ),
    Guest(
        "demo",
        "a tour for first-time users: timer ticks in hlt, RTC, a page fault, a CRC",
        cmdline="ticks=5",
    ),
)


VIRTIO_GUESTS: tuple[Guest, ...] = (
    Guest(
        "blk",
        "virtio-blk: capacity, get-id, 16 sectors written, read back and compared, flush, a read past the end",
        virtio=("blk",),
    ),
    Guest(
        "net",
        "virtio-net: ARP for the gateway 10.0.2.2, then ping it count=N times (3)",
        virtio=("net",),
    ),
    Guest(
        "console",
        "virtio-console: a greeting out, one line in (interrupt driven), an answer out",
        virtio=("console",),
        console_input_file="console.in",
    ),
    Guest(
        "rng",
        "virtio-rng: reads bytes=N (64) bytes of entropy; prints a summary, never the bytes",
        virtio=("rng",),
    ),
    Guest(
        "uart-vs-virtio",
        "the same text through COM1 (an exit per byte) and virtio-console (4 KiB buffers); size=N bytes",
        cmdline="size=4096",
        virtio=("console",),
    ),
)


def names() -> list[str]:
    return [g.name for g in GUESTS]


def all_guests() -> tuple[Guest, ...]:
    """The guests of :data:`GUESTS` and :data:`VIRTIO_GUESTS`."""
    return GUESTS + VIRTIO_GUESTS


def get(name: str) -> Guest:
    for guest in all_guests():
        if guest.name == name:
            return guest
    raise ConfigError(f"unknown guest {name!r} (bundled guests: {', '.join(g.name for g in all_guests())})")


def image_path(name: str) -> Path:
    """The prebuilt PVH ELF image of a bundled guest."""
    return get(name).image


def expected_output(name: str) -> str:
    return get(name).expected_output_path.read_text(encoding="utf-8")


def expected_status(name: str) -> int:
    return int(get(name).expected_status_path.read_text(encoding="ascii").strip())


def deterministic_lines(output: bytes | str) -> str:
    """Serial output reduced to what must match on every correct PC.

    The guests end lines with CR LF (like Linux's serial console); this
    returns LF-terminated lines without the ``[var] `` ones.
    """
    if isinstance(output, bytes):
        output = output.decode("utf-8", errors="backslashreplace")
    lines = [line.removesuffix("\r") for line in output.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return "".join(f"{line}\n" for line in lines if not line.startswith(VAR_PREFIX))

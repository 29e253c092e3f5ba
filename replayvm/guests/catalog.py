"""The guest kernels bundled with ReplayVM, for ``replayvm guests`` and the tests.

Each guest prints lines on COM1 and leaves through isa-debug-exit (port
0xf4), so the process exit status is ``(code << 1) | 1`` as with QEMU.
Lines that legitimately differ between hosts (the RTC date, TSC deltas)
start with ``[var] ``; everything else is identical on QEMU and on any
correct PC.  ``expected/NAME.out`` holds those other lines for the guest's
default command line (and input file), as produced by
``deterministic_lines``; ``expected/NAME.status`` holds the exit status.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from replayvm.errors import ConfigError

GUESTS_DIR = Path(__file__).resolve().parent
IMAGES_DIR = GUESTS_DIR / "images"
EXPECTED_DIR = GUESTS_DIR / "expected"

VAR_PREFIX = "[var] "


@dataclass(frozen=True, slots=True)
class Guest:
    name: str
    description: str
    cmdline: str = ""
    input_file: str | None = None
    exit_code: int = 0

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
        "demo",
        "a tour for first-time users: timer ticks in hlt, RTC, a page fault, a CRC",
        cmdline="ticks=5",
    ),
)


def names() -> list[str]:
    return [g.name for g in GUESTS]


def get(name: str) -> Guest:
    for guest in GUESTS:
        if guest.name == name:
            return guest
    raise ConfigError(f"unknown guest {name!r} (bundled guests: {', '.join(names())})")


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

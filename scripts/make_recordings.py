"""Re-record the regression recordings in recordings/ (run after a deliberate
change of guest-visible behaviour; `pytest recordings/` then replays them).

    python scripts/make_recordings.py [NAME ...]

Each recording pins something a user saw, stated in its note, with
expectations taken from the run (``--expect KIND`` without a value).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "recordings"
INPUTS = ROOT / "replayvm" / "guests" / "expected"

# name: (guest, extra record options, note)
RECORDINGS: dict[str, tuple[str, list[str], str]] = {
    "hello": ("hello", [], "Boot through PVH, print the command line and the memory map, exit 0 (status 1)."),
    "timer": (
        "timer",
        ["--cmdline", "ticks=200 hz=1000"],
        (
            "200 PIT interrupts at 1 kHz through the 8259 while idling in HLT; virtual time skips idle periods, "
            "so the timer costs no log events."
        ),
    ),
    "echo-input": (
        "echo",
        ["--input", str(INPUTS / "echo.in")],
        "Interrupt-driven 16550 receive: every scripted input byte is a logged event at an exact icount.",
    ),
    "pagefault": (
        "pagefault",
        [],
        (
            "Own page tables; #PF (not present, read-only, unmapped), #DE, #UD and int3 delivered through the IDT "
            "and resumed."
        ),
    ),
    "buggy-crash": (
        "buggy",
        ["--expect", "crash-at"],
        (
            "BUG: cancelling the newest order leaves last_touched dangling; order_total() follows the poisoned "
            "next pointer and takes #GP. Debug with: watch the pointer, reverse-continue."
        ),
    ),
    "irqbug": (
        "irqbug",
        ["--expect", "output-contains=balance corrupted"],
        (
            "BUG: the timer handler's sample ring wraps at 9, overwriting ledger.balance; the audit panics much "
            "later. watch the balance and reverse-continue: the store is in record_sample()."
        ),
    ),
    "demo": ("demo", [], "The first-run tour: timer ticks in HLT, RTC, a page fault, a CRC."),
    "blk": ("blk", [], "virtio-blk: sectors written, read back and flushed; the disk image is embedded in the file."),
    "net": (
        "net",
        [],
        "virtio-net: ARP and three pings answered by the built-in gateway 10.0.2.2, completions by interrupt.",
    ),
    "rng": ("rng", [], "virtio-rng: host entropy is a logged input, so the guest sees the same bytes on replay."),
    "crc-long": (
        "crc",
        ["--cmdline", "work=1"],
        "A long compute run (over 10^8 instructions): exact instruction counting and periodic SYNC digests.",
    ),
}


def record(name: str) -> None:
    guest, extra, note = RECORDINGS[name]
    target = OUT / f"{name}.rvr"
    cmd = [
        sys.executable,
        "-m",
        "replayvm",
        "record",
        guest,
        "-o",
        str(target),
        "-q",
        "--expect",
        "status",
        "--expect",
        "output",
        "--expect",
        "reason",
        "--note",
        note,
        *extra,
    ]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
    print(f"{target.relative_to(ROOT)}: status {proc.returncode}, {target.stat().st_size} bytes")


def main(names: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    for name in names or list(RECORDINGS):
        if name not in RECORDINGS:
            print(f"unknown recording {name!r}; known: {', '.join(RECORDINGS)}", file=sys.stderr)
            return 2
        record(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

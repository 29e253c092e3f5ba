"""Machine.watch_output gives the exact icount at which a text first shows on
the serial line (bench --linux's "instructions to the shell prompt"), and
host.converse types lines at a process's prompt (its QEMU side)."""

from __future__ import annotations

import sys

from replayvm.guests import catalog
from replayvm.host import converse
from replayvm.machine import Machine, MachineConfig

MARKER = b"command line:"


def hello(max_insns: int | None = None) -> tuple[list[int], bytes]:
    guest = catalog.get("hello")
    seen: list[int] = []
    out = bytearray()
    machine = Machine(MachineConfig(64, guest.cmdline), guest.image.read_bytes(), serial_out=out.extend)
    machine.watch_output(MARKER, seen.append)
    machine.run(max_insns)
    return seen, bytes(out)


def test_watch_output_fires_once_at_the_icount_of_the_markers_last_byte() -> None:
    seen, out = hello()
    assert len(seen) == 1 and out.count(MARKER) == 1
    icount = seen[0]
    _, before = hello(max_insns=icount - 1)
    _, at = hello(max_insns=icount)
    assert MARKER not in before and at.endswith(MARKER)


def test_converse_types_each_line_when_the_prompt_shows_again() -> None:
    script = "import sys\nfor _ in range(2):\n    print('> ', end='', flush=True)\n    print('got', input())\n"
    talk = converse([sys.executable, "-c", script], [b"one\n", b"two\n", b"never\n"], b"> ", timeout=60)
    assert not talk.timed_out and talk.typed == 2
    assert talk.output == b"> got one\n> got two\n"
    assert talk.prompt_seconds is not None and talk.prompt_seconds <= talk.seconds


def test_converse_stops_a_process_at_the_timeout() -> None:
    talk = converse([sys.executable, "-c", "import time; time.sleep(60)"], [], b"> ", timeout=0.5)
    assert talk.timed_out and talk.prompt_seconds is None and talk.output == b""

"""Every bundled guest boots on ReplayVM and prints what it prints on a real PC.

The expected lines (``replayvm/guests/expected``) are the ones the QEMU
cross-check tests compare against QEMU ``-M pc``; matching them here means
ReplayVM and QEMU agree on every deterministic line and on the exit status.
"""

from __future__ import annotations

import pytest

from replayvm.guests import catalog
from replayvm.host import BytesSource, Host
from replayvm.machine import Machine, MachineConfig

WALL_CLOCK = 1_790_000_000 * 10**9  # a fixed RTC base: the wall clock is a host input


def run_guest(name: str, *, max_slice: int | None = None, cmdline: str | None = None) -> tuple[Machine, bytes]:
    guest = catalog.get(name)
    out = bytearray()
    source = BytesSource(guest.input_path.read_bytes()) if guest.input_path else None
    kwargs = {} if max_slice is None else {"max_slice": max_slice}
    machine = Machine(
        MachineConfig(64, guest.cmdline if cmdline is None else cmdline),
        guest.image.read_bytes(),
        host=Host(source, wall_clock_ns=WALL_CLOCK),
        serial_out=out.extend,
        **kwargs,
    )
    machine.run()
    return machine, bytes(out)


@pytest.mark.parametrize("name", [g.name for g in catalog.GUESTS if g.name != "crc"])
def test_bundled_guest_output_and_status_match_expected(name: str) -> None:
    machine, out = run_guest(name)
    assert machine.result is not None
    assert catalog.deterministic_lines(out) == catalog.expected_output(name)
    assert machine.result.status == catalog.expected_status(name)


def test_crc_guest_computes_expected_crc() -> None:
    machine, out = run_guest("crc")
    assert catalog.deterministic_lines(out) == catalog.expected_output("crc")
    assert machine.result is not None and machine.result.reason == "debug-exit"


def test_timer_guest_idles_in_hlt_and_takes_one_interrupt_per_tick() -> None:
    machine, _ = run_guest("timer", cmdline="ticks=30")
    exits = machine.vcpu.stats
    assert exits.interrupts[0x20] == 30
    assert exits.by_reason["hlt"] >= 30
    # 30 ticks at 100 Hz is 0.3 s of virtual time, nearly all of it skipped in HLT.
    assert machine.vcpu.idle_ns > 0.29e9
    assert machine.vcpu.icount < 1_000_000


def test_pagefault_guest_takes_each_exception_through_the_idt() -> None:
    machine, _ = run_guest("pagefault")
    exc = machine.vcpu.stats.exceptions
    assert exc[14] == 3 and exc[0] == 1 and exc[6] == 1 and exc[3] == 1
    assert exc[8] == 0  # never escalated to #DF


def test_echo_guest_takes_serial_input_by_interrupt() -> None:
    machine, out = run_guest("echo")
    assert machine.vcpu.stats.interrupts[0x24] > 0  # IRQ4 at the vector the guest programmed
    assert b"echo: hello, replayvm" in out


@pytest.mark.parametrize("name", ["timer", "echo", "pagefault", "demo"])
def test_same_guest_gives_same_final_state_whatever_the_slice_size(name: str) -> None:
    """Determinism (DESIGN.md §1): where slices end must not change the guest."""
    runs = [run_guest(name, max_slice=s) for s in (2_000_000, 2_000_000, 9_973, 1_000)]
    finals = {(m.vcpu.icount, m.vcpu.now(), m.vcpu.digest(), out) for m, out in runs}
    assert len(finals) == 1

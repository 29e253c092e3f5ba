"""Scripted input typed like a person (``--input``): a line at a time, only while
the guest idles with its receive interrupt on (replayvm/host.py, BytesSource)."""

from __future__ import annotations

import zlib

from replayvm.guests import catalog
from replayvm.host import BytesSource, Host
from replayvm.machine import Machine, MachineConfig

WALL_CLOCK = 1_790_000_000 * 10**9


class LoggingHost(Host):
    def __init__(self, source: BytesSource) -> None:
        super().__init__(source, wall_clock_ns=WALL_CLOCK)
        self.deliveries: list[tuple[int, bytes]] = []

    def serial_input(self, icount: int, max_bytes: int, timeout: float | None = 0.0) -> bytes:
        data = super().serial_input(icount, max_bytes, timeout)
        if data:
            self.deliveries.append((icount, data))
        return data


def run_echo(paced: bool) -> tuple[Machine, LoggingHost, bytes]:
    guest = catalog.get("echo")
    assert guest.input_path is not None
    host = LoggingHost(BytesSource(guest.input_path.read_bytes(), paced=paced))
    out = bytearray()
    machine = Machine(MachineConfig(64, guest.cmdline), guest.image.read_bytes(), host=host, serial_out=out.extend)
    machine.run(max_insns=200_000_000)
    return machine, host, bytes(out)


def test_paced_input_gives_the_echo_guest_its_expected_session() -> None:
    machine, _, out = run_echo(paced=True)
    assert catalog.deterministic_lines(out) == catalog.expected_output("echo")
    assert machine.result is not None and machine.result.status == catalog.expected_status("echo")


def test_paced_input_arrives_one_line_per_idle_period() -> None:
    _, host, _ = run_echo(paced=True)
    by_icount: dict[int, bytes] = {}
    for icount, data in host.deliveries:
        by_icount[icount] = by_icount.get(icount, b"") + data
    chunks = list(by_icount.values())
    assert len(chunks) > 1
    assert all(chunk.count(b"\n") <= 1 for chunk in chunks)
    assert all(b"\n" not in chunk[:-1] for chunk in chunks)  # a newline ends a delivery


def test_paced_input_waits_for_the_receive_interrupt() -> None:
    guest = catalog.get("hello")  # never enables IER.ERBFI
    host = LoggingHost(BytesSource(b"typed\n", paced=True))
    machine = Machine(MachineConfig(64, guest.cmdline), guest.image.read_bytes(), host=host)
    machine.run(max_insns=50_000_000)
    assert host.deliveries == []
    assert machine.serial_in_crc == zlib.crc32(b"")

"""The virtio guests on ReplayVM: rv-pc plus the virtio-mmio board API.

``Machine`` does not carry virtio devices yet, so this harness adds them the
way the integration API says the machine will: ``attach()`` on the vCPU's
MMIO map and the PIC's lines, the announcing command-line fragment, and
timed devices for deterministic input (the responder's wire, scripted
console input). The deterministic lines must equal QEMU microvm's
(``expected/NAME.out``, checked against QEMU in test_virtio_guests_qemu.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from replayvm.guests import catalog
from replayvm.host import BytesSource, Host
from replayvm.machine import Machine, MachineConfig, canonical_bytes
from replayvm.virtio.blk import VirtioBlk
from replayvm.virtio.board import attach, device_stats, warnings
from replayvm.virtio.device import VirtioBackend
from replayvm.virtio.mmio import VirtioMmioTransport
from tests.guests.test_virtio_guests_qemu import uart_vs_virtio_text, xorshift64_bytes

WALL_CLOCK = 1_790_000_000 * 10**9
MAX_INSNS = 200_000_000
RETRY_NS = 100_000


def counting_entropy(n: int) -> bytes:
    """Stands in for the host's entropy, which the board logs: any bytes will do."""
    return bytes((7 * i + 1) & 0xFF for i in range(n))


class LivelockGuard:
    """A RunObserver that turns a run loop stuck at one icount into a failed run, not a hung test."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.icount = -1
        self.repeats = 0

    def next_stop(self, icount: int) -> int | None:
        return None

    def at_boundary(self, machine: Machine) -> None:
        if machine.vcpu.icount != self.icount:
            self.icount, self.repeats = machine.vcpu.icount, 0
            return
        self.repeats += 1
        if self.repeats == self.LIMIT:
            machine.request_stop("stuck", 125, f"run loop made no progress at icount {self.icount}")


@dataclass
class VirtioRun:
    machine: Machine
    serial: bytes
    console: bytes
    transports: list[VirtioMmioTransport]
    backends: dict[str, Any] = field(default_factory=dict)


class EntropyHost(Host):
    def entropy(self, icount: int, n: int) -> bytes:
        return counting_entropy(n)


def run_virtio_guest(
    name: str,
    *,
    cmdline: str | None = None,
    announce: bool = True,
    max_slice: int | None = None,
) -> VirtioRun:
    """Run a virtio guest on rv-pc with the devices it needs (MachineConfig.virtio);
    ``announce=False`` attaches them by hand without the command-line words, so
    the guest has to find them by probing the slots."""
    guest = catalog.get(name)
    serial, console_out = bytearray(), bytearray()
    kwargs = {} if max_slice is None else {"max_slice": max_slice}
    data = guest.console_input_path.read_bytes() if guest.console_input_path else b""
    disk = bytes(catalog.VIRTIO_DISK_BYTES) if "blk" in guest.virtio else None
    config = MachineConfig(64, guest.cmdline if cmdline is None else cmdline, virtio=guest.virtio, disk=disk)
    if not announce:
        config = MachineConfig(64, config.cmdline)
    machine = Machine(
        config,
        guest.image.read_bytes(),
        host=EntropyHost(BytesSource(data) if data else None, wall_clock_ns=WALL_CLOCK),
        serial_out=serial.extend,
        console_out=console_out.extend,
        **kwargs,  # type: ignore[arg-type]
    )
    transports = machine.virtio_transports
    backends: dict[str, Any] = {}
    if not announce:
        devices: list[VirtioBackend] = [VirtioBlk(bytes(catalog.VIRTIO_DISK_BYTES), serial=catalog.VIRTIO_DISK_SERIAL)]
        transports = attach(machine.vcpu.map_mmio, machine.pic.irq_line, machine.ram, devices)
    for transport in transports:
        backends[type(transport.backend).__name__.removeprefix("Virtio").lower()] = transport.backend
    if machine.net_wire is not None:
        backends["wire"] = machine.net_wire
    machine.run(max_insns=MAX_INSNS, observer=LivelockGuard())
    return VirtioRun(machine, bytes(serial), bytes(console_out), list(transports), backends)


VIRTIO_NAMES = [g.name for g in catalog.VIRTIO_GUESTS]


@pytest.mark.parametrize("name", VIRTIO_NAMES)
def test_virtio_guest_output_and_status_match_qemu(name: str) -> None:
    run = run_virtio_guest(name)
    assert run.machine.result is not None
    assert catalog.deterministic_lines(run.serial) == catalog.expected_output(name)
    assert run.machine.result.status == catalog.expected_status(name)
    assert warnings(run.transports) == []


def test_blk_guest_finds_the_disk_by_probing_the_slots_too() -> None:
    run = run_virtio_guest("blk", announce=False)
    assert catalog.deterministic_lines(run.serial) == catalog.expected_output("blk")


def test_blk_guest_writes_go_to_the_overlay() -> None:
    run = run_virtio_guest("blk")
    blk: VirtioBlk = run.backends["blk"]
    pattern = xorshift64_bytes(0x5EED, 16 * 512 // 8)
    assert sorted(blk.overlay) == list(range(64, 80))
    assert blk.disk_bytes()[64 * 512 : 80 * 512] == pattern
    assert blk.image == bytes(catalog.VIRTIO_DISK_BYTES)


def test_blk_guest_without_a_disk_says_so() -> None:
    guest = catalog.get("blk")
    out = bytearray()
    machine = Machine(MachineConfig(64, ""), guest.image.read_bytes(), serial_out=out.extend)
    attach(machine.vcpu.map_mmio, machine.pic.irq_line, machine.ram, [])  # placeholders only
    result = machine.run(max_insns=MAX_INSNS)
    assert catalog.deterministic_lines(bytes(out)) == "blk: no virtio-blk device found (probe)\n"
    assert result.status == 3


def test_net_guest_waits_in_hlt_for_interrupts() -> None:
    run = run_virtio_guest("net")
    stats = device_stats(run.transports)["virtio-net@0xd0000000"]
    assert stats["interrupts"] >= 4  # an ARP reply and three echo replies
    assert run.machine.vcpu.stats.interrupts[0x20 + 5] == stats["interrupts"]
    assert run.machine.vcpu.stats.by_reason["hlt"] >= 4
    assert run.backends["wire"].peer.answered == 4


def test_console_guest_talks_on_the_virtio_console() -> None:
    run = run_virtio_guest("console")
    assert run.console == b"console: hello from virtio-console\nyou said: hello from the host\n"


def test_rng_guest_gets_the_boards_entropy() -> None:
    run = run_virtio_guest("rng")
    crc = zlib.crc32(counting_entropy(64))
    assert f"[var] rng: 1 requests, crc32 0x{crc:08x}" in run.serial.decode()


def test_uart_vs_virtio_same_text_far_fewer_exits() -> None:
    run = run_virtio_guest("uart-vs-virtio")
    text = uart_vs_virtio_text(4096)
    assert run.console == text
    stats = device_stats(run.transports)["virtio-console@0xd0000000"]
    assert stats["bytes_in"] == len(text)
    assert stats["notifications"] <= 8
    assert run.machine.vcpu.stats.io_ports[0x3F8] >= len(text)  # one OUT per byte on COM1


@pytest.mark.parametrize("name", ["net", "blk"])
def test_virtio_guest_is_deterministic_whatever_the_slice_size(name: str) -> None:
    """DESIGN.md §1: device completions and the wire's deliveries do not depend on slicing.
    (Host input to the virtio console arrives at slice boundaries, like any host
    input; its icounts are logged, so a replay is exact whatever the slicing.)"""
    runs = [run_virtio_guest(name, max_slice=s) for s in (2_000_000, 9_973, 1_000)]
    finals = {(r.machine.vcpu.icount, r.machine.vcpu.now(), r.machine.vcpu.digest(), r.serial) for r in runs}
    assert len(finals) == 1


@pytest.mark.parametrize("name", ["net", "blk"])
def test_device_state_is_plain_data_the_machine_can_digest(name: str) -> None:
    run = run_virtio_guest(name)
    for dev in [*run.transports, *([run.backends["wire"]] if "wire" in run.backends else [])]:
        state = dev.save_state()
        canonical_bytes(state)  # raises on anything but plain data
        dev.load_state(state)
        assert dev.save_state() == state


@pytest.mark.parametrize("name", ["blk", "net", "console"])
def test_virtio_guest_with_polled_completion(name: str) -> None:
    guest = catalog.get(name)
    run = run_virtio_guest(name, cmdline=f"{guest.cmdline} virtio_poll".strip())
    assert catalog.deterministic_lines(run.serial) == catalog.expected_output(name)
    assert sum(t.stats.interrupts for t in run.transports) == 0  # VIRTQ_AVAIL_F_NO_INTERRUPT honoured

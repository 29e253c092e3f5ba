"""The board integration API: slots, mapping, IRQ wiring, command line, statistics."""

from __future__ import annotations

import struct

import pytest
from unicorn.x86_const import UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_RIP

from replayvm.devices.base import IrqLine
from replayvm.devices.pic8259 import Pic8259Pair
from replayvm.engine.memory import GuestRam
from replayvm.engine.vcpu import Vcpu
from replayvm.errors import ConfigError
from replayvm.virtio.blk import VirtioBlk
from replayvm.virtio.board import (
    VIRTIO_SLOTS,
    VirtioSlot,
    attach,
    cmdline_fragment,
    device_stats,
    occupied_slots,
    state_devices,
    warnings,
)
from replayvm.virtio.console import VirtioConsole
from replayvm.virtio.device import VIRTIO_ID_BLOCK, VIRTIO_ID_ENTROPY
from replayvm.virtio.mmio import VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_MAGIC_VALUE
from replayvm.virtio.rng import VirtioRng
from tests.virtio.driver import Driver, DriverQueue

CODE = 0x1000


def test_slots_match_the_platform() -> None:
    assert [(s.base, s.irq, s.size) for s in VIRTIO_SLOTS] == [
        (0xD0000000 + 0x1000 * i, irq, 0x1000) for i, irq in enumerate((5, 6, 7, 9, 10, 11))
    ]


def test_cmdline_fragment_in_linux_syntax() -> None:
    assert cmdline_fragment(VIRTIO_SLOTS[:2]) == (
        "virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6"
    )
    assert cmdline_fragment([VirtioSlot(0xFEB00000, 12, 512)]) == "virtio_mmio.device=512@0xfeb00000:12"
    assert cmdline_fragment([]) == ""


class FakeBus:
    def __init__(self) -> None:
        self.windows: dict[int, tuple[int, object, object]] = {}
        self.lines: dict[int, IrqLine] = {}

    def map_mmio(self, base: int, size: int, read: object, write: object) -> None:
        assert base not in self.windows
        self.windows[base] = (size, read, write)

    def irq_line(self, n: int) -> IrqLine:
        return self.lines.setdefault(n, IrqLine(f"irq{n}"))


def test_attach_maps_every_slot_and_wires_device_irqs() -> None:
    bus = FakeBus()
    mem = GuestRam(1 << 20)
    devices = [VirtioBlk(bytes(4096)), VirtioRng(bytes)]
    transports = attach(bus.map_mmio, bus.irq_line, mem, devices)
    assert [t.backend for t in transports] == devices
    assert sorted(bus.windows) == [s.base for s in VIRTIO_SLOTS]
    assert sorted(bus.lines) == [5, 6]
    assert transports[0].irq is bus.lines[5] and transports[1].irq is bus.lines[6]
    assert [t.name for t in transports] == ["virtio-blk@0xd0000000", "virtio-rng@0xd0001000"]
    assert cmdline_fragment(occupied_slots(len(transports))) == (
        "virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6"
    )
    _, read_empty, _ = bus.windows[0xD0005000]
    assert read_empty(VIRTIO_MMIO_MAGIC_VALUE, 4) == VIRTIO_MMIO_MAGIC  # type: ignore[operator]
    assert read_empty(8, 4) == 0  # type: ignore[operator]  # DeviceID 0: placeholder


def test_attach_refuses_more_devices_than_slots() -> None:
    bus = FakeBus()
    with pytest.raises(ConfigError, match="only 6 virtio-mmio slots"):
        attach(bus.map_mmio, bus.irq_line, GuestRam(1 << 20), [VirtioRng(bytes) for _ in range(7)])


def test_state_devices_stats_and_warnings_are_plain_data() -> None:
    bus = FakeBus()
    transports = attach(bus.map_mmio, bus.irq_line, GuestRam(1 << 20), [VirtioConsole(lambda d: None)])
    assert list(state_devices(transports)) == ["virtio-console@0xd0000000"]
    stats = device_stats(transports)
    assert stats == {
        "virtio-console@0xd0000000": {
            "notifications": 0,
            "interrupts": 0,
            "requests": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "errors": 0,
        }
    }
    transports[0].write(0, 4, 0)  # a write to MagicValue
    assert warnings(transports) == ["virtio-console@0xd0000000: write of 0x0 to read-only or reserved register 0x0"]


@pytest.fixture
def machine() -> tuple[Vcpu, Pic8259Pair, list]:
    ram = GuestRam(1 << 20)
    vcpu = Vcpu(ram, pio_read=lambda p, s: 0xFF, pio_write=lambda p, s, v: None)
    pic = Pic8259Pair()
    transports = attach(vcpu.map_mmio, pic.irq_line, ram, [VirtioBlk(bytes(range(256)) * 8), VirtioRng(bytes)])
    return vcpu, pic, transports


def run(vcpu: Vcpu, code: bytes) -> None:
    vcpu.ram.write(CODE, code + b"\xf4")  # ... ; hlt
    vcpu.uc.reg_write(UC_X86_REG_RIP, CODE)
    vcpu.run(1000)


def mov_rbx(value: int) -> bytes:
    return b"\x48\xbb" + struct.pack("<Q", value)


def test_guest_code_reads_the_registers_through_a_real_vcpu(machine: tuple[Vcpu, Pic8259Pair, list]) -> None:
    vcpu, _, _ = machine
    code = mov_rbx(0xD0000000)
    code += b"\x8b\x03"  # mov eax, [rbx]        MagicValue of slot 0
    code += b"\x8b\x4b\x08"  # mov ecx, [rbx+8]  DeviceID of slot 0
    code += b"\x8b\x93\x08\x10\x00\x00"  # mov edx, [rbx+0x1008]  DeviceID of slot 1
    run(vcpu, code)
    assert vcpu.uc.reg_read(UC_X86_REG_EAX) == 0x74726976
    assert vcpu.uc.reg_read(UC_X86_REG_ECX) == VIRTIO_ID_BLOCK
    assert vcpu.uc.reg_read(UC_X86_REG_EDX) == VIRTIO_ID_ENTROPY
    assert vcpu.stats.by_reason["mmio"] == 3


def test_guest_queue_notify_completes_a_request_and_raises_the_irq(machine: tuple[Vcpu, Pic8259Pair, list]) -> None:
    vcpu, pic, transports = machine
    blk = transports[0]
    # Driver set-up from Python through the same register window; the guest kicks.
    drv = Driver.over(blk, vcpu.ram).start(queue_size=8)
    dq: DriverQueue = drv.queues[0]
    head = dq.add([struct.pack("<IIQ", 0, 0, 1)], [512, 1])  # VIRTIO_BLK_T_IN of sector 1
    code = mov_rbx(0xD0000000) + b"\xc7\x43\x50\x00\x00\x00\x00"  # mov dword [rbx+0x50], 0
    run(vcpu, code)
    assert dq.take_used() == [(head, 513)]
    assert dq.written(head, 513) == (bytes(range(256)) * 2) + b"\x00"
    assert pic.irq_line(5).level
    assert blk.stats.notifications == 1 and blk.stats.interrupts == 1

"""How rv-pc carries virtio-mmio devices (DESIGN.md §2): the integration API.

Six 4 KiB slots at 0xD0000000 + 0x1000*i with ISA IRQs 5, 6, 7, 9, 10 and
11 through the 8259 pair. Devices take the first slots in the order given;
the remaining slots hold placeholders (DeviceID 0, §4.2.2) so that a guest
probing every slot reads a valid header instead of unmapped memory. The
guest learns the occupied slots from the kernel command line, in the
``virtio_mmio.device=<size>@<base>:<irq>`` syntax of Linux's virtio_mmio
driver (Documentation/admin-guide/kernel-parameters.txt), which
Firecracker uses too.

The machine owns everything nondeterministic; the functions here only wire
and move data:

* :func:`attach` maps the windows and connects the interrupt lines;
* :func:`cmdline_fragment` is the command-line text for the occupied slots;
* :func:`state_devices` names each transport for ``devices()`` and state digests;
* :func:`deliver_net_rx` and :meth:`VirtioConsole.receive` are the slice-boundary
  input paths; :func:`device_stats` and :func:`warnings` feed ``replayvm stats``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from replayvm.devices.base import Device, IrqLine
from replayvm.errors import ConfigError
from replayvm.virtio.device import PlaceholderBackend, VirtioBackend
from replayvm.virtio.mmio import (
    VIRTIO_MMIO_DEVICE_ID,
    VIRTIO_MMIO_MAGIC,
    VIRTIO_MMIO_MAGIC_VALUE,
    VIRTIO_MMIO_VENDOR,
    VIRTIO_MMIO_VENDOR_ID,
    VIRTIO_MMIO_VERSION,
    VIRTIO_MMIO_VERSION_2,
    VIRTIO_MMIO_WINDOW,
    VirtioMmioTransport,
)
from replayvm.virtio.net import NetBackend, VirtioNet
from replayvm.virtio.queue import GuestMemory

VIRTIO_MMIO_BASE = 0xD000_0000
VIRTIO_MMIO_IRQS = (5, 6, 7, 9, 10, 11)

MapMmio = Callable[[int, int, Callable[[int, int], int], Callable[[int, int, int], None]], None]


@dataclass(frozen=True, slots=True)
class VirtioSlot:
    """One virtio-mmio window: guest-physical base, ISA IRQ, size."""

    base: int
    irq: int
    size: int = VIRTIO_MMIO_WINDOW

    @property
    def cmdline(self) -> str:
        size = f"{self.size >> 10}K" if self.size % 1024 == 0 else str(self.size)
        return f"virtio_mmio.device={size}@{self.base:#x}:{self.irq}"


VIRTIO_SLOTS: tuple[VirtioSlot, ...] = tuple(
    VirtioSlot(VIRTIO_MMIO_BASE + VIRTIO_MMIO_WINDOW * i, irq) for i, irq in enumerate(VIRTIO_MMIO_IRQS)
)


_EMPTY_SLOT_HEADER = {
    VIRTIO_MMIO_MAGIC_VALUE: VIRTIO_MMIO_MAGIC,
    VIRTIO_MMIO_VERSION: VIRTIO_MMIO_VERSION_2,
    VIRTIO_MMIO_DEVICE_ID: PlaceholderBackend.device_id,
    VIRTIO_MMIO_VENDOR_ID: VIRTIO_MMIO_VENDOR,
}


class EmptySlot(Device):
    """A window without a device: a valid v2 header with DeviceID 0 (§4.2.2),
    every other register reads 0 and writes are dropped. No state."""

    name = "virtio-empty"

    def read(self, offset: int, size: int) -> int:
        return _EMPTY_SLOT_HEADER.get(offset, 0) if size == 4 else 0

    def write(self, offset: int, size: int, value: int) -> None:
        pass


def attach(
    vcpu_map_mmio: MapMmio,
    pic_irq_line: Callable[[int], IrqLine],
    mem: GuestMemory,
    devices: Sequence[VirtioBackend],
    *,
    slots: Sequence[VirtioSlot] = VIRTIO_SLOTS,
) -> list[VirtioMmioTransport]:
    """Put ``devices`` in the first slots, placeholders in the rest, and map
    every window with ``vcpu_map_mmio(base, size, read, write)`` (the
    signature of :meth:`replayvm.engine.vcpu.Vcpu.map_mmio`). Each device's
    interrupt goes to ``pic_irq_line(slot.irq)``. Returns the transports in
    slot order: ``transports[i]`` sits in ``slots[i]``."""
    if len(devices) > len(slots):
        raise ConfigError(f"{len(devices)} virtio devices, but rv-pc has only {len(slots)} virtio-mmio slots")
    transports = []
    for i, slot in enumerate(slots):
        if i < len(devices):
            name = f"virtio-{devices[i].name}@{slot.base:#x}"
            transport = VirtioMmioTransport(devices[i], mem, pic_irq_line(slot.irq), name=name)
            transports.append(transport)
            vcpu_map_mmio(slot.base, slot.size, transport.read, transport.write)
        else:
            empty = EmptySlot()
            vcpu_map_mmio(slot.base, slot.size, empty.read, empty.write)
    return transports


def cmdline_fragment(slots: Sequence[VirtioSlot]) -> str:
    """``virtio_mmio.device=4K@0xd0000000:5 ...`` for the given (occupied) slots."""
    return " ".join(slot.cmdline for slot in slots)


def occupied_slots(count: int, slots: Sequence[VirtioSlot] = VIRTIO_SLOTS) -> list[VirtioSlot]:
    """The slots :func:`attach` gives ``count`` devices."""
    return list(slots[:count])


def state_devices(transports: Sequence[VirtioMmioTransport]) -> dict[str, Device]:
    """Stable names -> transports, to merge into ``Machine.devices()``; each
    transport's ``save_state()`` includes its back-end's."""
    return {t.name: t for t in transports}


def device_stats(transports: Sequence[VirtioMmioTransport]) -> dict[str, dict[str, int]]:
    """Per-device counters (notifications, interrupts, requests, bytes_in,
    bytes_out, errors) as plain dicts, for ``replayvm stats``."""
    return {t.name: t.stats.as_dict() for t in transports}


def warnings(transports: Sequence[VirtioMmioTransport]) -> list[str]:
    """One line per driver error the devices saw, for the board to print."""
    lines = []
    for t in transports:
        lines.extend(t.warnings)
        if t.warnings_dropped:
            lines.append(f"{t.name}: {t.warnings_dropped} more warnings not shown")
    return lines


def deliver_net_rx(net: VirtioNet, backend: NetBackend, limit: int = 64) -> int:
    """At a slice boundary: move frames the back-end holds into the guest's
    receive buffers until either runs out; returns how many were delivered.
    A frame stays with the back-end while the guest has no buffer for it."""
    delivered = 0
    while delivered < limit and (frame := backend.peek_rx()) is not None and net.receive(frame):
        backend.pop_rx()
        delivered += 1
    return delivered

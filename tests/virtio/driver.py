"""A small virtio driver in Python, for the device tests.

It plays the guest: lays out split virtqueues in a :class:`GuestRam`
(virtio 1.2 §2.7), builds descriptor chains, and talks to a transport
only through its MMIO registers (§4.2.3), as a guest would.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from replayvm.devices.base import IrqLine
from replayvm.engine.memory import GuestRam
from replayvm.virtio.device import VirtioBackend
from replayvm.virtio.features import VIRTIO_F_VERSION_1
from replayvm.virtio.mmio import (
    VIRTIO_MMIO_CONFIG,
    VIRTIO_MMIO_DEVICE_FEATURES,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL,
    VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL,
    VIRTIO_MMIO_INTERRUPT_ACK,
    VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_QUEUE_DESC_HIGH,
    VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
    VIRTIO_MMIO_QUEUE_DEVICE_LOW,
    VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
    VIRTIO_MMIO_QUEUE_DRIVER_LOW,
    VIRTIO_MMIO_QUEUE_NOTIFY,
    VIRTIO_MMIO_QUEUE_NUM,
    VIRTIO_MMIO_QUEUE_READY,
    VIRTIO_MMIO_QUEUE_SEL,
    VIRTIO_MMIO_STATUS,
    VirtioMmioTransport,
)
from replayvm.virtio.queue import (
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
    SplitVirtqueue,
)
from replayvm.virtio.status import (
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
)

RAM_SIZE = 1 << 20
RING_BASE = 0x10000  # queue i at RING_BASE + i * RING_STRIDE
RING_STRIDE = 0x8000
DATA_BASE = 0x60000


class DriverQueue:
    """The driver's half of one split virtqueue."""

    def __init__(self, mem: GuestRam, base: int, size: int) -> None:
        self.mem = mem
        self.size = size
        self.desc = base
        self.avail = base + 16 * size
        self.used = (self.avail + 6 + 2 * size + 3) & ~3
        mem.write(base, bytes(self.used + 6 + 8 * size - base))
        self.free = list(range(size))
        self.avail_idx = 0
        self.last_used = 0
        self.data_next = DATA_BASE + (base - RING_BASE) // RING_STRIDE * 0x10000
        self.buffers: dict[int, list[tuple[int, int]]] = {}
        self.chains: dict[int, list[int]] = {}

    def program(self, q: SplitVirtqueue) -> None:
        """Write the layout straight into a device queue (queue-only tests)."""
        q.size, q.desc_addr, q.driver_addr, q.device_addr = self.size, self.desc, self.avail, self.used
        q.ready = True

    def alloc(self, length: int, data: bytes = b"") -> int:
        addr = self.data_next
        self.data_next += (length + 15) & ~15
        if data:
            self.mem.write(addr, data)
        return addr

    def write_desc(self, table: int, index: int, addr: int, length: int, flags: int, next_index: int = 0) -> None:
        self.mem.write(table + 16 * index, struct.pack("<QIHH", addr, length, flags, next_index))

    def add(self, readable: Sequence[bytes], writable: Sequence[int], *, indirect: bool = False) -> int:
        """Make a chain of readable buffers (their bytes) then writable ones
        (their sizes) available; returns the head index."""
        parts = [(self.alloc(len(b), b), len(b), 0) for b in readable]
        parts += [(self.alloc(n), n, VIRTQ_DESC_F_WRITE) for n in writable]
        if indirect:
            table = self.alloc(16 * len(parts))
            for i, (addr, length, flags) in enumerate(parts):
                nxt = VIRTQ_DESC_F_NEXT if i + 1 < len(parts) else 0
                self.write_desc(table, i, addr, length, flags | nxt, i + 1)
            indexes = [self.free.pop(0)]
            self.write_desc(self.desc, indexes[0], table, 16 * len(parts), VIRTQ_DESC_F_INDIRECT)
        else:
            indexes = [self.free.pop(0) for _ in parts]
            for i, (addr, length, flags) in enumerate(parts):
                last = i + 1 == len(parts)
                nxt = 0 if last else indexes[i + 1]
                self.write_desc(self.desc, indexes[i], addr, length, flags | (0 if last else VIRTQ_DESC_F_NEXT), nxt)
        head = indexes[0]
        self.buffers[head] = [(a, n) for a, n, f in parts if f & VIRTQ_DESC_F_WRITE]
        self.chains[head] = indexes
        self.publish(head)
        return head

    def publish(self, head: int) -> None:
        self.mem.write_int(self.avail + 4 + 2 * (self.avail_idx % self.size), 2, head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.write_int(self.avail + 2, 2, self.avail_idx)

    def set_avail_idx(self, value: int) -> None:
        self.mem.write_int(self.avail + 2, 2, value)

    def set_used_event(self, value: int) -> None:
        self.mem.write_int(self.avail + 4 + 2 * self.size, 2, value)

    def set_avail_flags(self, value: int) -> None:
        self.mem.write_int(self.avail, 2, value)

    def avail_event(self) -> int:
        return self.mem.read_int(self.used + 4 + 8 * self.size, 2)

    def used_idx(self) -> int:
        return self.mem.read_int(self.used + 2, 2)

    def take_used(self) -> list[tuple[int, int]]:
        """New (id, len) used elements; their descriptors return to the free list."""
        out = []
        while self.last_used != self.used_idx():
            elem = self.used + 4 + 8 * (self.last_used % self.size)
            head, length = struct.unpack("<II", self.mem.read(elem, 8))
            out.append((head, length))
            self.free.extend(self.chains.pop(head))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return out

    def written(self, head: int, length: int) -> bytes:
        """The first ``length`` bytes the device wrote into chain ``head``."""
        out = bytearray()
        for addr, n in self.buffers[head]:
            out += self.mem.read(addr, n)
        return bytes(out[:length])


class Driver:
    """Drives a transport through its registers, like the guest SDK does."""

    def __init__(self, backend: VirtioBackend, mem: GuestRam | None = None) -> None:
        self.mem = mem or GuestRam(RAM_SIZE)
        self.irq = IrqLine("virtio")
        self.transport = VirtioMmioTransport(backend, self.mem, self.irq)
        self.queues: list[DriverQueue] = []

    @classmethod
    def over(cls, transport: VirtioMmioTransport, mem: GuestRam) -> Driver:
        """A driver for a transport that already sits on a board."""
        drv = cls.__new__(cls)
        drv.mem, drv.irq, drv.transport, drv.queues = mem, transport.irq, transport, []
        return drv

    def read(self, offset: int) -> int:
        return self.transport.read(offset, 4)

    def write(self, offset: int, value: int) -> None:
        self.transport.write(offset, 4, value)

    def config(self, offset: int, size: int) -> int:
        return self.transport.read(VIRTIO_MMIO_CONFIG + offset, size)

    def device_features(self) -> int:
        self.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0)
        low = self.read(VIRTIO_MMIO_DEVICE_FEATURES)
        self.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1)
        return low | self.read(VIRTIO_MMIO_DEVICE_FEATURES) << 32

    def negotiate(self, features: int = 1 << VIRTIO_F_VERSION_1) -> bool:
        """§3.1.1 steps 1-6; True if the device kept FEATURES_OK."""
        self.write(VIRTIO_MMIO_STATUS, 0)
        self.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE)
        self.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
        for sel in (0, 1):
            self.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel)
            self.write(VIRTIO_MMIO_DRIVER_FEATURES, features >> (32 * sel) & 0xFFFFFFFF)
        self.write(
            VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK
        )
        return bool(self.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK)

    def setup_queue(self, index: int, size: int = 16) -> DriverQueue:
        dq = DriverQueue(self.mem, RING_BASE + RING_STRIDE * index, size)
        self.write(VIRTIO_MMIO_QUEUE_SEL, index)
        self.write(VIRTIO_MMIO_QUEUE_NUM, size)
        for low, high, addr in (
            (VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, dq.desc),
            (VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, dq.avail),
            (VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, dq.used),
        ):
            self.write(low, addr & 0xFFFFFFFF)
            self.write(high, addr >> 32)
        self.write(VIRTIO_MMIO_QUEUE_READY, 1)
        return dq

    def start(self, features: int = 1 << VIRTIO_F_VERSION_1, queue_size: int = 16) -> Driver:
        """Full initialisation: negotiate, set up every queue, DRIVER_OK."""
        assert self.negotiate(features)
        self.queues = [self.setup_queue(i, queue_size) for i in range(len(self.transport.queues))]
        self.write(
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE
            | VIRTIO_CONFIG_S_DRIVER
            | VIRTIO_CONFIG_S_FEATURES_OK
            | VIRTIO_CONFIG_S_DRIVER_OK,
        )
        return self

    def notify(self, index: int) -> None:
        self.write(VIRTIO_MMIO_QUEUE_NOTIFY, index)

    def ack_interrupt(self) -> int:
        status = self.read(VIRTIO_MMIO_INTERRUPT_STATUS)
        self.write(VIRTIO_MMIO_INTERRUPT_ACK, status)
        return status

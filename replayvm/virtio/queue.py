"""Split virtqueues, the device's side (virtio 1.2 §2.7).

Three areas in guest memory, all written by a driver we do not trust:

* the descriptor table (§2.7.5): ``{le64 addr; le32 len; le16 flags; le16 next}``;
* the available ring, "driver area" (§2.7.6):
  ``{le16 flags; le16 idx; le16 ring[size]; le16 used_event}``;
* the used ring, "device area" (§2.7.8):
  ``{le16 flags; le16 idx; {le32 id; le32 len} ring[size]; le16 avail_event}``.

Every guest-controlled value is checked before it is used: ring positions
are taken modulo the queue size, a descriptor index must be below the
table size, a chain is at most as long as its table (which also ends any
loop), every buffer must lie in guest RAM, a chain carries at most
:data:`MAX_CHAIN_BYTES`, readable buffers come before writable ones
(§2.7.4.2), indirect tables (§2.7.5.3) are not nested, and the available
index may run at most ``size`` entries ahead of the device (§2.7.6). A
violation marks the queue broken and is reported once through ``on_error``
(the transport then sets DEVICE_NEEDS_RESET, §2.1.2); no exception leaves
this module.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from replayvm.engine.memory import GuestMemoryError

VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
VIRTQ_AVAIL_F_NO_INTERRUPT = 1
VIRTQ_USED_F_NO_NOTIFY = 1

VIRTQ_DESC_SIZE = 16
VIRTQ_USED_ELEM_SIZE = 8
VIRTQ_DESC_ALIGN = 16  # §2.7 table "Virtqueue Part Alignment"
VIRTQ_AVAIL_ALIGN = 2
VIRTQ_USED_ALIGN = 4
VIRTQ_MAX_SIZE = 32768  # §2.7: queue size is a power of 2, at most 32768

MAX_INDIRECT_DESCRIPTORS = 1024  # QEMU's VIRTQUEUE_MAX_SIZE; Linux stays far below
MAX_CHAIN_BYTES = 32 << 20  # per chain and direction: a sane cap, RAM bounds the rest

_DESC = struct.Struct("<QIHH")


class GuestMemory(Protocol):
    """Guest-physical memory as :class:`replayvm.engine.memory.GuestRam` offers it."""

    size: int

    def read(self, paddr: int, length: int) -> bytes: ...

    def write(self, paddr: int, data: bytes) -> None: ...

    def read_int(self, paddr: int, size: int) -> int: ...

    def write_int(self, paddr: int, size: int, value: int) -> None: ...

    def contains(self, paddr: int, length: int = 1) -> bool: ...


class VirtqueueError(Exception):
    """A driver broke the virtqueue rules; caught inside this package."""


@dataclass(frozen=True, slots=True)
class Buffer:
    """One guest buffer of a chain, already checked to lie in RAM."""

    addr: int
    length: int


class DescriptorChain:
    """The buffers of one available chain (§2.7.13): readable ones, then writable ones."""

    __slots__ = ("head", "mem", "readable", "writable")

    def __init__(self, mem: GuestMemory, head: int, readable: list[Buffer], writable: list[Buffer]) -> None:
        self.mem = mem
        self.head = head
        self.readable = readable
        self.writable = writable

    @property
    def readable_length(self) -> int:
        return sum(b.length for b in self.readable)

    @property
    def writable_length(self) -> int:
        return sum(b.length for b in self.writable)

    def read(self, limit: int | None = None) -> bytes:
        """The device-readable bytes, concatenated (at most ``limit``)."""
        out = bytearray()
        for b in self.readable:
            take = b.length if limit is None else min(b.length, limit - len(out))
            if take <= 0:
                break
            out += self.mem.read(b.addr, take)
        return bytes(out)

    def write(self, data: bytes, offset: int = 0) -> int:
        """Scatter ``data`` into the writable buffers from byte ``offset`` on;
        returns how many bytes fitted."""
        done = 0
        for b in self.writable:
            if offset >= b.length:
                offset -= b.length
                continue
            take = min(b.length - offset, len(data) - done)
            self.mem.write(b.addr + offset, data[done : done + take])
            done += take
            offset = 0
            if done == len(data):
                break
        return done


def vring_need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """§2.7.7.2 / §2.7.10: has the index passed ``event_idx`` in (old, new]?"""
    return (new_idx - event_idx - 1) & 0xFFFF < (new_idx - old_idx) & 0xFFFF


class SplitVirtqueue:
    """One split virtqueue as the device sees it.

    The driver programs ``size`` and the three addresses through the
    transport, then sets ``ready``. The device consumes chains with
    :meth:`pop`, returns them with :meth:`push`, and asks
    :meth:`needs_notification` whether to interrupt the driver.
    """

    def __init__(self, mem: GuestMemory, max_size: int = 256, on_error: Callable[[str], None] | None = None) -> None:
        if not 0 < max_size <= VIRTQ_MAX_SIZE or max_size & (max_size - 1):
            raise ValueError(f"queue size maximum {max_size} must be a power of 2 up to {VIRTQ_MAX_SIZE}")
        self.mem = mem
        self.max_size = max_size
        self.on_error = on_error
        self.reset()

    def reset(self) -> None:
        """The state after a device reset (§2.4): not ready, indices 0."""
        self.size = self.max_size
        self.ready = False
        self.desc_addr = 0
        self.driver_addr = 0
        self.device_addr = 0
        self.event_idx = False
        self.indirect = False
        self.broken = False
        self.last_avail_idx = 0
        self.used_idx = 0
        self.signalled_used = 0
        self.signalled_valid = False
        self.pending_used = 0

    # -- configuration ----------------------------------------------------------------
    def layout_problem(self) -> str | None:
        """Why the programmed size and areas cannot be used, or None (§2.7, §4.2.3.2)."""
        size = self.size
        if not 0 < size <= self.max_size or size & (size - 1):
            return f"queue size {size} is not a power of 2 in 1..{self.max_size}"
        areas = (
            ("descriptor table", self.desc_addr, VIRTQ_DESC_SIZE * size, VIRTQ_DESC_ALIGN),
            ("driver area", self.driver_addr, 6 + 2 * size, VIRTQ_AVAIL_ALIGN),
            ("device area", self.device_addr, 6 + VIRTQ_USED_ELEM_SIZE * size, VIRTQ_USED_ALIGN),
        )
        for what, addr, length, align in areas:
            if addr % align:
                return f"{what} at {addr:#x} is not {align}-byte aligned"
            if not self.mem.contains(addr, length):
                return f"{what} {addr:#x}+{length:#x} is outside guest RAM"
        return None

    # -- the error path ----------------------------------------------------------------
    def _fail(self, message: str) -> None:
        if not self.broken:
            self.broken = True
            if self.on_error is not None:
                self.on_error(message)

    # -- available ring (driver -> device) ---------------------------------------------
    def avail_idx(self) -> int:
        return self.mem.read_int(self.driver_addr + 2, 2)

    def avail_flags(self) -> int:
        return self.mem.read_int(self.driver_addr, 2)

    def used_event(self) -> int:
        return self.mem.read_int(self.driver_addr + 4 + 2 * self.size, 2)

    def set_avail_event(self, value: int) -> None:
        self.mem.write_int(self.device_addr + 4 + VIRTQ_USED_ELEM_SIZE * self.size, 2, value)

    def pending(self) -> int:
        """How many chains the driver has made available that the device has not taken."""
        if not self.ready or self.broken:
            return 0
        try:
            count = (self.avail_idx() - self.last_avail_idx) & 0xFFFF
        except GuestMemoryError as e:  # areas were checked at ready; defensive
            self._fail(str(e))
            return 0
        if count > self.size:
            self._fail(f"available index ran {count} entries ahead of the device, queue size {self.size} (§2.7.6)")
            return 0
        return count

    def pop(self) -> DescriptorChain | None:
        """The next available chain, or None when there is none or the queue is broken."""
        if not self.pending():
            return None
        try:
            head = self.mem.read_int(self.driver_addr + 4 + 2 * (self.last_avail_idx % self.size), 2)
            chain = self._walk(head)
        except (VirtqueueError, GuestMemoryError) as e:
            self._fail(str(e))
            return None
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        if self.event_idx:
            self.set_avail_event(self.last_avail_idx)
        return chain

    def unpop(self) -> None:
        """Give back the chain :meth:`pop` returned last (the device could not use it)."""
        self.last_avail_idx = (self.last_avail_idx - 1) & 0xFFFF
        if self.event_idx:
            self.set_avail_event(self.last_avail_idx)

    def _walk(self, head: int) -> DescriptorChain:
        """Follow a chain from ``head`` through at most one indirect table (§2.7.5)."""
        mem = self.mem
        table, table_len = self.desc_addr, self.size
        readable: list[Buffer] = []
        writable: list[Buffer] = []
        in_indirect = False
        index, hops = head, 0
        total_in = total_out = 0
        while True:
            if index >= table_len:
                raise VirtqueueError(f"chain {head}: descriptor index {index} outside a table of {table_len}")
            hops += 1
            if hops > table_len:
                raise VirtqueueError(f"chain {head}: longer than its table of {table_len} (a loop?)")
            addr, length, flags, next_index = _DESC.unpack(mem.read(table + VIRTQ_DESC_SIZE * index, VIRTQ_DESC_SIZE))
            if flags & VIRTQ_DESC_F_INDIRECT:
                if not self.indirect:
                    raise VirtqueueError(f"chain {head}: indirect descriptor without VIRTIO_F_INDIRECT_DESC")
                if in_indirect:
                    raise VirtqueueError(f"chain {head}: indirect descriptor inside an indirect table (§2.7.5.3.1)")
                if flags & VIRTQ_DESC_F_NEXT:
                    raise VirtqueueError(f"chain {head}: indirect descriptor with F_NEXT set (§2.7.5.3.1)")
                count = length // VIRTQ_DESC_SIZE
                if length % VIRTQ_DESC_SIZE or not 0 < count <= MAX_INDIRECT_DESCRIPTORS:
                    raise VirtqueueError(f"chain {head}: indirect table of {length} bytes")
                if not mem.contains(addr, length):
                    raise VirtqueueError(f"chain {head}: indirect table {addr:#x}+{length:#x} outside guest RAM")
                table, table_len, in_indirect = addr, count, True
                index, hops = 0, 0
                continue
            if length:
                if not mem.contains(addr, length):
                    raise VirtqueueError(f"chain {head}: buffer {addr:#x}+{length:#x} outside guest RAM")
                if flags & VIRTQ_DESC_F_WRITE:
                    total_in += length
                    writable.append(Buffer(addr, length))
                else:
                    if writable:
                        raise VirtqueueError(f"chain {head}: readable buffer after a writable one (§2.7.4.2)")
                    total_out += length
                    readable.append(Buffer(addr, length))
                if total_in > MAX_CHAIN_BYTES or total_out > MAX_CHAIN_BYTES:
                    raise VirtqueueError(f"chain {head}: more than {MAX_CHAIN_BYTES} bytes")
            if not flags & VIRTQ_DESC_F_NEXT:
                return DescriptorChain(mem, head, readable, writable)
            index = next_index

    # -- used ring (device -> driver) ---------------------------------------------------
    def push(self, head: int, length: int) -> None:
        """Return chain ``head`` with ``length`` bytes written into it (§2.7.8)."""
        if not self.ready or self.broken:
            return
        elem = self.device_addr + 4 + VIRTQ_USED_ELEM_SIZE * (self.used_idx % self.size)
        self.mem.write(elem, struct.pack("<II", head, length))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self.mem.write_int(self.device_addr + 2, 2, self.used_idx)
        self.pending_used += 1

    def needs_notification(self) -> bool:
        """Whether the chains pushed since the last call deserve an interrupt
        (§2.7.7.2 without and with VIRTIO_F_EVENT_IDX)."""
        if not self.pending_used or self.broken:
            return False
        self.pending_used = 0
        if not self.event_idx:
            return not self.avail_flags() & VIRTQ_AVAIL_F_NO_INTERRUPT
        old, valid = self.signalled_used, self.signalled_valid
        self.signalled_used, self.signalled_valid = self.used_idx, True
        return not valid or vring_need_event(self.used_event(), self.used_idx, old)

    # -- state -------------------------------------------------------------------------
    _STATE = (
        "size",
        "ready",
        "desc_addr",
        "driver_addr",
        "device_addr",
        "event_idx",
        "indirect",
        "broken",
        "last_avail_idx",
        "used_idx",
        "signalled_used",
        "signalled_valid",
        "pending_used",
    )

    def save_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state(self, state: dict[str, Any]) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])

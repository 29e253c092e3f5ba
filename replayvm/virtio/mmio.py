"""The virtio-mmio transport, version 2 (virtio 1.2 §4.2).

One 4 KiB window per device: the control registers of §4.2.2 (table 4.1)
below 0x100, the device configuration space from 0x100. The transport owns
the device status (§2.1), feature negotiation (§2.2), the queues (§2.7),
the interrupt status and line, and the configuration generation; the
device type is a :class:`~replayvm.virtio.device.VirtioBackend`.

The hypervisor may execute one MMIO access twice (Unicorn replays an
access if emulation is stopped inside the callback, DESIGN.md §3), so
reads have no side effects and every write is idempotent: writing the same
status, selector, address or ack again changes nothing, and a repeated
QueueNotify finds no new buffers.

A misbehaving driver never raises out of here: control-register accesses
of the wrong width, writes the spec forbids and queue errors are counted in
``stats.errors`` and described in ``warnings``; queue and request errors
also put the device into DEVICE_NEEDS_RESET with a configuration-change
interrupt (§2.1.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replayvm.devices.base import Device, IrqLine
from replayvm.virtio.device import VirtioBackend, VirtioStats
from replayvm.virtio.features import TRANSPORT_FEATURES, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1
from replayvm.virtio.queue import GuestMemory, SplitVirtqueue
from replayvm.virtio.status import (
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET,
    StatusVerdict,
    status_transition,
)

# Table 4.1, "MMIO Device Register Layout" (§4.2.2).
VIRTIO_MMIO_MAGIC_VALUE = 0x000
VIRTIO_MMIO_VERSION = 0x004
VIRTIO_MMIO_DEVICE_ID = 0x008
VIRTIO_MMIO_VENDOR_ID = 0x00C
VIRTIO_MMIO_DEVICE_FEATURES = 0x010
VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014
VIRTIO_MMIO_DRIVER_FEATURES = 0x020
VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024
VIRTIO_MMIO_QUEUE_SEL = 0x030
VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034
VIRTIO_MMIO_QUEUE_NUM = 0x038
VIRTIO_MMIO_QUEUE_READY = 0x044
VIRTIO_MMIO_QUEUE_NOTIFY = 0x050
VIRTIO_MMIO_INTERRUPT_STATUS = 0x060
VIRTIO_MMIO_INTERRUPT_ACK = 0x064
VIRTIO_MMIO_STATUS = 0x070
VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080
VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084
VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090  # "QueueAvail" in Linux
VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094
VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0A0  # "QueueUsed" in Linux
VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0A4
VIRTIO_MMIO_SHM_SEL = 0x0AC
VIRTIO_MMIO_SHM_LEN_LOW = 0x0B0
VIRTIO_MMIO_SHM_LEN_HIGH = 0x0B4
VIRTIO_MMIO_SHM_BASE_LOW = 0x0B8
VIRTIO_MMIO_SHM_BASE_HIGH = 0x0BC
VIRTIO_MMIO_QUEUE_RESET = 0x0C0
VIRTIO_MMIO_CONFIG_GENERATION = 0x0FC
VIRTIO_MMIO_CONFIG = 0x100

VIRTIO_MMIO_MAGIC = 0x74726976  # "virt"
VIRTIO_MMIO_VERSION_2 = 2  # non-legacy (§4.2.2); legacy devices say 1
VIRTIO_MMIO_VENDOR = int.from_bytes(b"RpVM", "little")
VIRTIO_MMIO_WINDOW = 0x1000

VIRTIO_MMIO_INT_VRING = 1 << 0  # used buffer notification
VIRTIO_MMIO_INT_CONFIG = 1 << 1  # configuration change notification

MAX_WARNINGS = 32  # a hostile driver must not grow memory without bound

_QUEUE_ADDRESS_REGISTERS = {
    VIRTIO_MMIO_QUEUE_DESC_LOW: ("desc_addr", 0),
    VIRTIO_MMIO_QUEUE_DESC_HIGH: ("desc_addr", 32),
    VIRTIO_MMIO_QUEUE_DRIVER_LOW: ("driver_addr", 0),
    VIRTIO_MMIO_QUEUE_DRIVER_HIGH: ("driver_addr", 32),
    VIRTIO_MMIO_QUEUE_DEVICE_LOW: ("device_addr", 0),
    VIRTIO_MMIO_QUEUE_DEVICE_HIGH: ("device_addr", 32),
}

_STATE = (
    "status",
    "device_features_sel",
    "driver_features_sel",
    "driver_features",
    "queue_sel",
    "interrupt_status",
    "config_generation",
)


class VirtioMmioTransport(Device):
    """A virtio device behind the MMIO register window of §4.2.2."""

    def __init__(self, backend: VirtioBackend, mem: GuestMemory, irq: IrqLine, *, name: str | None = None) -> None:
        self.backend = backend
        self.mem = mem
        self.irq = irq
        self.name = name or f"virtio-{backend.name}"
        self.stats = VirtioStats()
        self.warnings: list[str] = []
        self.warnings_dropped = 0
        self.queues = [
            SplitVirtqueue(mem, backend.queue_num_max, on_error=self._queue_error(i))
            for i in range(len(backend.queue_names))
        ]
        self.status = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.queue_sel = 0
        self.interrupt_status = 0
        self.config_generation = 0
        backend.bind(self)

    # -- what the back-end sees (DeviceLink) ---------------------------------------------
    @property
    def device_features(self) -> int:
        return self.backend.device_features() | TRANSPORT_FEATURES

    @property
    def negotiated_features(self) -> int:
        return self.driver_features if self.status & VIRTIO_CONFIG_S_FEATURES_OK else 0

    def has_feature(self, bit: int) -> bool:
        return bool(self.negotiated_features >> bit & 1)

    def queue(self, index: int) -> SplitVirtqueue | None:
        if self.status & VIRTIO_CONFIG_S_NEEDS_RESET or not self.status & VIRTIO_CONFIG_S_DRIVER_OK:
            return None
        if not 0 <= index < len(self.queues):
            return None
        q = self.queues[index]
        return q if q.ready and not q.broken else None

    def signal_used(self, index: int) -> None:
        q = self.queues[index]
        if q.needs_notification():
            self._interrupt(VIRTIO_MMIO_INT_VRING)

    def config_changed(self) -> None:
        self.config_generation = (self.config_generation + 1) & 0xFFFFFFFF
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK:
            self._interrupt(VIRTIO_MMIO_INT_CONFIG)

    def device_error(self, message: str) -> None:
        """§2.1.2: set DEVICE_NEEDS_RESET and, after DRIVER_OK, tell the driver."""
        self.warn(f"{message}; device needs reset")
        if self.status & VIRTIO_CONFIG_S_NEEDS_RESET:
            return
        self.status |= VIRTIO_CONFIG_S_NEEDS_RESET
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK:
            self._interrupt(VIRTIO_MMIO_INT_CONFIG)

    def warn(self, message: str) -> None:
        self.stats.errors += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(f"{self.name}: {message}")
        else:
            self.warnings_dropped += 1

    def _queue_error(self, index: int) -> Callable[[str], None]:
        def report(message: str) -> None:
            self.device_error(f"queue {index} ({self.backend.queue_names[index]}): {message}")

        return report

    # -- interrupts ----------------------------------------------------------------------
    def _interrupt(self, bits: int) -> None:
        self.interrupt_status |= bits
        self._update_irq()

    def _update_irq(self) -> None:
        level = self.interrupt_status != 0
        if level and not self.irq.level:
            self.stats.interrupts += 1
        self.irq.set_level(level)

    # -- register window -----------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset >= VIRTIO_MMIO_CONFIG:
            return self._read_config(offset - VIRTIO_MMIO_CONFIG, size)
        if size != 4 or offset % 4:
            self.warn(f"{size}-byte read at {offset:#x}: control registers are 32-bit (§4.2.2.2)")
            return 0
        return self._read_register(offset)

    def _read_register(self, offset: int) -> int:
        if offset == VIRTIO_MMIO_MAGIC_VALUE:
            return VIRTIO_MMIO_MAGIC
        if offset == VIRTIO_MMIO_VERSION:
            return VIRTIO_MMIO_VERSION_2
        if offset == VIRTIO_MMIO_DEVICE_ID:
            return self.backend.device_id
        if offset == VIRTIO_MMIO_VENDOR_ID:
            return VIRTIO_MMIO_VENDOR
        if offset == VIRTIO_MMIO_DEVICE_FEATURES:
            if self.device_features_sel > 1:
                return 0
            return self.device_features >> (32 * self.device_features_sel) & 0xFFFFFFFF
        if offset == VIRTIO_MMIO_QUEUE_NUM_MAX:
            return self.queues[self.queue_sel].max_size if self.queue_sel < len(self.queues) else 0
        if offset == VIRTIO_MMIO_QUEUE_READY:
            return int(self.queue_sel < len(self.queues) and self.queues[self.queue_sel].ready)
        if offset == VIRTIO_MMIO_INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == VIRTIO_MMIO_STATUS:
            return self.status
        if offset in (VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH):
            return 0xFFFFFFFF  # no shared memory regions: length -1 (§4.2.2)
        if offset == VIRTIO_MMIO_CONFIG_GENERATION:
            return self.config_generation
        return 0  # write-only and reserved registers

    def _read_config(self, offset: int, size: int) -> int:
        config = self.backend.config_space()
        if offset + size > len(config):
            return 0
        return int.from_bytes(config[offset : offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= VIRTIO_MMIO_CONFIG:
            data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            self.backend.write_config(offset - VIRTIO_MMIO_CONFIG, data)
            return
        if size != 4 or offset % 4:
            self.warn(f"{size}-byte write at {offset:#x}: control registers are 32-bit (§4.2.2.2)")
            return
        value &= 0xFFFFFFFF
        if offset == VIRTIO_MMIO_DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == VIRTIO_MMIO_DRIVER_FEATURES:
            self._write_driver_features(value)
        elif offset == VIRTIO_MMIO_DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == VIRTIO_MMIO_QUEUE_SEL:
            self.queue_sel = value
        elif offset == VIRTIO_MMIO_QUEUE_NUM:
            self._write_queue_field("size", value)
        elif offset == VIRTIO_MMIO_QUEUE_READY:
            self._write_queue_ready(value)
        elif offset == VIRTIO_MMIO_QUEUE_NOTIFY:
            self._notify(value)
        elif offset == VIRTIO_MMIO_INTERRUPT_ACK:
            self.interrupt_status &= ~value
            self._update_irq()
        elif offset == VIRTIO_MMIO_STATUS:
            self._write_status(value)
        elif offset in _QUEUE_ADDRESS_REGISTERS:
            field, shift = _QUEUE_ADDRESS_REGISTERS[offset]
            q = self._selected_queue()
            if q is not None:
                old = getattr(q, field)
                self._write_queue_field(field, (old & ~(0xFFFFFFFF << shift)) | (value << shift))
        elif offset == VIRTIO_MMIO_SHM_SEL:
            pass  # no shared memory regions to select
        else:
            self.warn(f"write of {value:#x} to read-only or reserved register {offset:#x}")

    # -- feature negotiation (§2.2, §3.1.1 steps 4-6) ---------------------------------------
    def _write_driver_features(self, value: int) -> None:
        if self.status & VIRTIO_CONFIG_S_FEATURES_OK:
            if (self.driver_features >> (32 * self.driver_features_sel)) & 0xFFFFFFFF != value:
                self.warn("driver features written after FEATURES_OK (§2.2.1); ignored")
            return
        if self.driver_features_sel > 1:
            if value:
                self.warn(f"driver features word {self.driver_features_sel} written: no such features")
            return
        shift = 32 * self.driver_features_sel
        self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)) | (value << shift)

    def _features_problem(self) -> str | None:
        unoffered = self.driver_features & ~self.device_features
        if unoffered:
            return f"driver accepted features {unoffered:#x} that were not offered (§2.2.1)"
        if not self.driver_features >> VIRTIO_F_VERSION_1 & 1:
            return "driver did not accept VIRTIO_F_VERSION_1: legacy drivers are not supported (§6.2)"
        return None

    # -- status (§2.1) ---------------------------------------------------------------------
    def _write_status(self, value: int) -> None:
        change = status_transition(self.status, value)
        if change.verdict is StatusVerdict.RESET:
            self.reset()
            return
        if change.verdict is StatusVerdict.IGNORE:
            self.warn(f"status write {value:#x} over {self.status:#x} ignored: {change.reason}")
            return
        new = change.status
        if change.verdict is StatusVerdict.NEGOTIATE:
            problem = self._features_problem()
            if problem is not None:
                self.warn(f"FEATURES_OK refused: {problem}")
                new &= ~(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)
            else:
                for q in self.queues:
                    q.event_idx = bool(self.driver_features >> VIRTIO_F_EVENT_IDX & 1)
                    q.indirect = bool(self.driver_features >> VIRTIO_F_INDIRECT_DESC & 1)
        if new & VIRTIO_CONFIG_S_FAILED and not self.status & VIRTIO_CONFIG_S_FAILED:
            self.warn("driver set FAILED")
        self.status = new | (self.status & VIRTIO_CONFIG_S_NEEDS_RESET)

    def reset(self) -> None:
        """Device reset (§2.4, §4.2.2.1): status, features, interrupts and queues cleared."""
        for name in _STATE:
            if name != "config_generation":
                setattr(self, name, 0)
        for q in self.queues:
            q.reset()
        self.backend.reset()
        self._update_irq()

    # -- queues (§4.2.3.2) ------------------------------------------------------------------
    def _selected_queue(self) -> SplitVirtqueue | None:
        if self.queue_sel < len(self.queues):
            return self.queues[self.queue_sel]
        self.warn(f"queue register written with QueueSel {self.queue_sel}: no such queue")
        return None

    def _write_queue_field(self, field: str, value: int) -> None:
        q = self._selected_queue()
        if q is None:
            return
        if q.ready:
            if getattr(q, field) != value:
                self.warn(f"queue {self.queue_sel} {field} written while QueueReady is 1; ignored")
            return
        setattr(q, field, value)

    def _write_queue_ready(self, value: int) -> None:
        q = self._selected_queue()
        if q is None:
            return
        if not value & 1:
            q.ready = False
            return
        if q.ready:
            return
        problem = q.layout_problem()
        if problem is not None:
            self.device_error(f"queue {self.queue_sel} not usable: {problem}")
            return
        q.ready = True

    def _notify(self, index: int) -> None:
        """QueueNotify (§4.2.2, without VIRTIO_F_NOTIFICATION_DATA: the queue index)."""
        self.stats.notifications += 1
        if not self.status & VIRTIO_CONFIG_S_DRIVER_OK or self.status & VIRTIO_CONFIG_S_NEEDS_RESET:
            return  # §2.1.2: no buffers are consumed before DRIVER_OK
        if not 0 <= index < len(self.queues) or not self.queues[index].ready:
            self.warn(f"notify for queue {index}, which is not ready")
            return
        self.backend.queue_notify(index)

    # -- state ------------------------------------------------------------------------------
    def save_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in _STATE}
        state["queues"] = [q.save_state() for q in self.queues]
        state["backend"] = self.backend.save_state()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        for name in _STATE:
            setattr(self, name, state[name])
        for q, qs in zip(self.queues, state["queues"], strict=True):
            q.load_state(qs)
        self.backend.load_state(state["backend"])
        self._update_irq()

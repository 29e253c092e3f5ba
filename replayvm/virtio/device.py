"""What a virtio device type (§5) implements, and what its transport offers it.

A device is split the way QEMU splits VirtIODevice from its proxy and
Firecracker splits a device from MmioTransport: the *back-end*
(:class:`VirtioBackend`: blk, net, console, rng) knows its device ID,
feature bits, configuration layout and what a request means; the
*transport* (:class:`~replayvm.virtio.mmio.VirtioMmioTransport`) owns
registers, status, negotiation, the queues and the interrupt line, and
hands the back-end a :class:`DeviceLink`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

from replayvm.virtio.queue import DescriptorChain, GuestMemory, SplitVirtqueue

VIRTIO_ID_NET = 1  # §5.1
VIRTIO_ID_BLOCK = 2  # §5.2
VIRTIO_ID_CONSOLE = 3  # §5.3
VIRTIO_ID_ENTROPY = 4  # §5.4
VIRTIO_ID_PLACEHOLDER = 0  # §4.2.2: "placeholder devices at static, well known addresses"


@dataclass(slots=True)
class VirtioStats:
    """Counters for ``replayvm stats``; diagnostics, not device state."""

    notifications: int = 0  # QueueNotify writes (driver -> device kicks)
    interrupts: int = 0  # rising edges of the interrupt line
    requests: int = 0  # chains processed
    bytes_in: int = 0  # read from guest buffers (driver -> device)
    bytes_out: int = 0  # written into guest buffers (device -> driver)
    errors: int = 0  # driver errors: refused writes, NEEDS_RESET

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class DeviceLink(Protocol):
    """The transport as a back-end sees it."""

    mem: GuestMemory
    stats: VirtioStats

    def queue(self, index: int) -> SplitVirtqueue | None:
        """Queue ``index`` if the device may use it now: DRIVER_OK, not
        NEEDS_RESET, queue ready (§2.1.2, §4.2.2.1). Otherwise None."""
        ...

    def signal_used(self, index: int) -> None:
        """Interrupt the driver if queue ``index`` says so (§2.7.7)."""
        ...

    def config_changed(self) -> None:
        """The configuration space changed (§2.5.1, §4.2.2.1)."""
        ...

    def device_error(self, message: str) -> None:
        """The driver broke the device's rules: enter DEVICE_NEEDS_RESET (§2.1.2)."""
        ...

    def warn(self, message: str) -> None:
        """A driver mistake the device survives: counted in ``errors``, one line kept."""
        ...

    def has_feature(self, bit: int) -> bool:
        """Whether feature ``bit`` was negotiated."""
        ...


class _Unbound:
    """The link of a back-end not (yet) attached to a transport: no queue is usable."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"virtio back-end is not attached to a transport ({name})")


class VirtioBackend:
    """Base class of the device types.

    Subclasses set the class attributes, and implement :meth:`queue_notify`
    and, if they have any, config space, features and state. They never
    raise on guest input: a malformed request is reported with
    ``self.link.device_error(...)`` and processing of that queue stops.
    """

    device_id: ClassVar[int]
    name: ClassVar[str]
    queue_names: ClassVar[tuple[str, ...]] = ()
    queue_num_max: ClassVar[int] = 256

    def __init__(self) -> None:
        self.link: DeviceLink = _Unbound()  # type: ignore[assignment]

    def bind(self, link: DeviceLink) -> None:
        self.link = link

    def device_features(self) -> int:
        """Device-type feature bits offered (§5.x.3); the transport adds its own."""
        return 0

    def config_space(self) -> bytes:
        """The device configuration layout (§5.x.4), little-endian."""
        return b""

    def write_config(self, offset: int, data: bytes) -> None:
        """A driver write into the configuration space; read-only by default."""

    def queue_notify(self, index: int) -> None:
        """The driver made buffers available on queue ``index`` (§2.7.13.4)."""

    def reset(self) -> None:
        """Device reset (§2.4): forget in-flight requests and negotiated state."""

    def save_state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    # -- helpers for subclasses ----------------------------------------------------------
    def drain(self, index: int, handle: Callable[[DescriptorChain], int | None]) -> int:
        """Pop every available chain of queue ``index``, call ``handle(chain)``
        which returns the bytes written (or None to stop after a device
        error), push it, then signal. Returns how many chains completed."""
        link = self.link
        queue = link.queue(index)
        if queue is None:
            return 0
        done = 0
        while (chain := queue.pop()) is not None:
            written = handle(chain)
            if written is None:
                break
            queue.push(chain.head, written)
            link.stats.requests += 1
            link.stats.bytes_out += written
            done += 1
        link.signal_used(index)
        return done


class PlaceholderBackend(VirtioBackend):
    """DeviceID 0: an empty slot that a driver probing the slots skips (§4.2.2)."""

    device_id = VIRTIO_ID_PLACEHOLDER
    name = "none"

"""The device status field and its transitions (virtio 1.2 §2.1, §3.1.1).

The driver walks the device through ACKNOWLEDGE -> DRIVER -> FEATURES_OK ->
DRIVER_OK by writing the status with one more bit set each time; it never
clears a bit except by writing 0, which resets the device (§2.1.1, §4.2.2).
DEVICE_NEEDS_RESET is the device's own bit: a driver writing back what it
read may echo it, but cannot set or clear it (§2.1.2).

:func:`status_transition` decides every write from :data:`STATUS_PREREQUISITES`,
a table of which bits each bit needs, so that a device test can walk it row
by row. Feature validation at FEATURES_OK (§2.2.2) belongs to the transport:
the verdict only says that it must happen.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

VIRTIO_CONFIG_S_ACKNOWLEDGE = 0x01
VIRTIO_CONFIG_S_DRIVER = 0x02
VIRTIO_CONFIG_S_DRIVER_OK = 0x04
VIRTIO_CONFIG_S_FEATURES_OK = 0x08
VIRTIO_CONFIG_S_NEEDS_RESET = 0x40
VIRTIO_CONFIG_S_FAILED = 0x80

DRIVER_STATUS_BITS = (
    VIRTIO_CONFIG_S_ACKNOWLEDGE
    | VIRTIO_CONFIG_S_DRIVER
    | VIRTIO_CONFIG_S_DRIVER_OK
    | VIRTIO_CONFIG_S_FEATURES_OK
    | VIRTIO_CONFIG_S_FAILED
)

#: Bit the driver sets -> bits that must already be set, or set in the same
#: write (the initialisation sequence of §3.1.1, steps 1-8).
STATUS_PREREQUISITES: dict[int, int] = {
    VIRTIO_CONFIG_S_ACKNOWLEDGE: 0,
    VIRTIO_CONFIG_S_DRIVER: VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_FEATURES_OK: VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK: VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_FAILED: 0,
}


class StatusVerdict(enum.Enum):
    RESET = "reset"  # 0 written: reset the device (§2.4)
    ACCEPT = "accept"  # the new status stands
    NEGOTIATE = "negotiate"  # FEATURES_OK newly set: the transport validates the features
    IGNORE = "ignore"  # a driver error: the status does not change


@dataclass(frozen=True, slots=True)
class StatusChange:
    verdict: StatusVerdict
    status: int  # driver bits after the write (before feature validation)
    reason: str = ""


def status_transition(current: int, written: int) -> StatusChange:
    """Decide a driver write of ``written`` to the status field holding ``current``."""
    written &= 0xFF
    if written == 0:
        return StatusChange(StatusVerdict.RESET, 0)
    have = current & DRIVER_STATUS_BITS
    want = written & ~VIRTIO_CONFIG_S_NEEDS_RESET
    if want & ~DRIVER_STATUS_BITS:
        return StatusChange(StatusVerdict.IGNORE, have, f"reserved status bits {want & ~DRIVER_STATUS_BITS:#x}")
    if have & ~want:
        return StatusChange(StatusVerdict.IGNORE, have, f"driver cleared status bits {have & ~want:#x} (§2.1.1)")
    added = want & ~have
    if not added:
        return StatusChange(StatusVerdict.ACCEPT, have)
    if have & VIRTIO_CONFIG_S_FAILED:
        return StatusChange(StatusVerdict.IGNORE, have, "status written after FAILED without a reset (§2.1.1)")
    for bit, needs in STATUS_PREREQUISITES.items():
        if added & bit and needs & ~want:
            return StatusChange(
                StatusVerdict.IGNORE, have, f"status bit {bit:#x} set before {needs & ~want:#x} (§3.1.1)"
            )
    if added & VIRTIO_CONFIG_S_FEATURES_OK:
        return StatusChange(StatusVerdict.NEGOTIATE, want)
    return StatusChange(StatusVerdict.ACCEPT, want)

"""Feature bits (virtio 1.2 §2.2, §6) that the transport and queue handle.

Device-type bits (0-23) belong to each back-end; the reserved bits here are
the transport's: it offers them for every device and the queue honours
them once negotiated. Linux calls bits 28 and 29 VIRTIO_RING_F_INDIRECT_DESC
and VIRTIO_RING_F_EVENT_IDX.
"""

from __future__ import annotations

VIRTIO_F_INDIRECT_DESC = 28  # §2.7.5.3 indirect descriptor tables
VIRTIO_F_EVENT_IDX = 29  # §2.7.7, §2.7.10 used_event / avail_event
VIRTIO_F_VERSION_1 = 32  # §6: compliant (non-legacy) device; §6.2 lets a device require it

TRANSPORT_FEATURES = (1 << VIRTIO_F_INDIRECT_DESC) | (1 << VIRTIO_F_EVENT_IDX) | (1 << VIRTIO_F_VERSION_1)


def bit(n: int) -> int:
    return 1 << n


def has(features: int, n: int) -> bool:
    return bool(features >> n & 1)

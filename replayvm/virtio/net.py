"""virtio-net (virtio 1.2 §5.1): one receive and one transmit queue.

Every buffer starts with ``struct virtio_net_hdr`` (§5.1.6), 12 bytes once
VIRTIO_F_VERSION_1 is negotiated (``num_buffers`` included). No offloads
are offered, so the header the driver sends carries nothing we must act
on, and the device sends an all-zero header with ``num_buffers = 1``.

Frames the guest sends go to a :class:`NetBackend` synchronously, inside
the QueueNotify exit. Frames for the guest are asynchronous input: the
board calls :meth:`VirtioNet.receive` at slice boundaries, and retries
later when it returns False (no receive buffer posted yet), as QEMU's net
queue does when ``can_receive`` is false.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from replayvm.virtio.device import VIRTIO_ID_NET, VirtioBackend
from replayvm.virtio.queue import DescriptorChain

VIRTIO_NET_F_CSUM = 0
VIRTIO_NET_F_MAC = 5
VIRTIO_NET_F_MRG_RXBUF = 15
VIRTIO_NET_F_STATUS = 16

VIRTIO_NET_S_LINK_UP = 1

VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR = struct.Struct("<BBHHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers
VIRTIO_NET_HDR_SIZE = VIRTIO_NET_HDR.size  # 12

MAX_FRAME = 65535  # no GSO is offered: anything larger cannot be a frame
DEFAULT_MAC = bytes.fromhex("525400123456")  # QEMU's default for the first NIC

RECEIVEQ = 0
TRANSMITQ = 1


class NetBackend(Protocol):
    """The other end of the wire: the built-in responder, or a host tunnel."""

    def transmit(self, frame: bytes) -> None:
        """A frame the guest sent, without the virtio header."""
        ...

    def peek_rx(self) -> bytes | None:
        """The next frame for the guest, left queued until :meth:`pop_rx`."""
        ...

    def pop_rx(self) -> bytes:
        """Remove the frame :meth:`peek_rx` returned (it reached the guest)."""
        ...


class VirtioNet(VirtioBackend):
    device_id = VIRTIO_ID_NET
    name = "net"
    queue_names = ("receiveq1", "transmitq1")
    queue_num_max = 256

    def __init__(self, backend: NetBackend, mac: bytes = DEFAULT_MAC, *, link_status: bool = True) -> None:
        super().__init__()
        if len(mac) != 6:
            raise ValueError("a MAC address has 6 bytes")
        self.backend = backend
        self.mac = bytes(mac)
        self.link_status = link_status
        self.rx_dropped = 0

    def device_features(self) -> int:
        features = 1 << VIRTIO_NET_F_MAC
        if self.link_status:
            features |= 1 << VIRTIO_NET_F_STATUS
        return features

    def config_space(self) -> bytes:
        """§5.1.4: mac[6], then status (meaningful with VIRTIO_NET_F_STATUS)."""
        return self.mac + struct.pack("<H", VIRTIO_NET_S_LINK_UP)

    # -- transmit (§5.1.6.2) ------------------------------------------------------------------
    def queue_notify(self, index: int) -> None:
        if index == TRANSMITQ:
            self.drain(TRANSMITQ, self._transmit)
        # RECEIVEQ: new receive buffers; the board delivers frames at the next slice boundary.

    def _transmit(self, chain: DescriptorChain) -> int | None:
        length = chain.readable_length
        if length < VIRTIO_NET_HDR_SIZE:
            self.link.device_error(f"transmit chain {chain.head}: {length} bytes, shorter than virtio_net_hdr")
            return None
        if length > VIRTIO_NET_HDR_SIZE + MAX_FRAME:
            self.link.warn(f"transmit chain {chain.head}: {length} bytes is no frame without GSO; dropped")
            return 0
        data = chain.read()
        self.link.stats.bytes_in += len(data)
        self.backend.transmit(data[VIRTIO_NET_HDR_SIZE:])
        return 0

    # -- receive (§5.1.6.3, §5.1.6.4) ---------------------------------------------------------
    def can_receive(self) -> bool:
        q = self.link.queue(RECEIVEQ)
        return q is not None and q.pending() > 0

    def receive(self, frame: bytes) -> bool:
        """Put one frame in the guest's next receive buffer. False: no buffer
        yet, try again later. True: delivered, or dropped because the buffer
        was too small for it (the driver SHOULD post 1526 bytes, §5.1.6.3.1)."""
        link = self.link
        q = link.queue(RECEIVEQ)
        if q is None:
            return False
        chain = q.pop()
        if chain is None:
            return False
        packet = VIRTIO_NET_HDR.pack(0, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0, 0, 1) + frame
        if chain.writable_length < len(packet):
            q.unpop()
            self.rx_dropped += 1
            link.warn(f"receive buffer of {chain.writable_length} bytes for a {len(frame)}-byte frame; dropped")
            return True
        chain.write(packet)
        q.push(chain.head, len(packet))
        link.stats.requests += 1
        link.stats.bytes_out += len(packet)
        link.signal_used(RECEIVEQ)
        return True

    def save_state(self) -> dict[str, Any]:
        return {"rx_dropped": self.rx_dropped}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rx_dropped = state["rx_dropped"]

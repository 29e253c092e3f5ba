"""virtio-net (virtio 1.2 §5.1): the 12-byte header, TX to the back-end, RX by receive()."""

from __future__ import annotations

import struct

from replayvm.virtio.board import deliver_net_rx
from replayvm.virtio.mmio import VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_STATUS
from replayvm.virtio.net import (
    DEFAULT_MAC,
    RECEIVEQ,
    TRANSMITQ,
    VIRTIO_NET_F_MAC,
    VIRTIO_NET_F_STATUS,
    VIRTIO_NET_HDR_SIZE,
    VIRTIO_NET_S_LINK_UP,
    VirtioNet,
)
from replayvm.virtio.status import VIRTIO_CONFIG_S_NEEDS_RESET
from tests.virtio.driver import Driver

HDR = bytes(VIRTIO_NET_HDR_SIZE)


class Wire:
    """A NetBackend that records what the guest sent and holds frames for it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.rx: list[bytes] = []

    def transmit(self, frame: bytes) -> None:
        self.sent.append(frame)

    def peek_rx(self) -> bytes | None:
        return self.rx[0] if self.rx else None

    def pop_rx(self) -> bytes:
        return self.rx.pop(0)


def make(**kwargs: object) -> tuple[Driver, VirtioNet, Wire]:
    wire = Wire()
    net = VirtioNet(wire, **kwargs)  # type: ignore[arg-type]
    return Driver(net).start(), net, wire


def test_header_is_12_bytes_with_version_1() -> None:
    assert VIRTIO_NET_HDR_SIZE == 12


def test_mac_and_link_status_in_config() -> None:
    drv, _, _ = make()
    assert bytes(drv.config(i, 1) for i in range(6)) == DEFAULT_MAC
    assert drv.config(6, 2) == VIRTIO_NET_S_LINK_UP
    features = drv.device_features()
    assert features >> VIRTIO_NET_F_MAC & 1 and features >> VIRTIO_NET_F_STATUS & 1


def test_status_feature_is_optional() -> None:
    drv, _, _ = make(link_status=False)
    assert not drv.device_features() >> VIRTIO_NET_F_STATUS & 1


def test_transmit_strips_the_header_whatever_the_layout() -> None:
    drv, _, wire = make()
    tx = drv.queues[TRANSMITQ]
    tx.add([HDR + b"frame-one"], [])
    tx.add([HDR[:5], HDR[5:] + b"frame", b"-two"], [])
    drv.notify(TRANSMITQ)
    assert wire.sent == [b"frame-one", b"frame-two"]
    assert [length for _, length in tx.take_used()] == [0, 0]


def test_transmit_shorter_than_the_header_needs_reset() -> None:
    drv, _, wire = make()
    drv.queues[TRANSMITQ].add([b"tiny"], [])
    drv.notify(TRANSMITQ)
    assert wire.sent == []
    assert drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET


def test_receive_writes_header_and_frame_and_interrupts() -> None:
    drv, net, _ = make()
    rx = drv.queues[RECEIVEQ]
    head = rx.add([], [1526])
    frame = bytes(range(60))
    assert net.receive(frame)
    [(used_head, length)] = rx.take_used()
    assert (used_head, length) == (head, 12 + 60)
    written = rx.written(head, length)
    flags, gso, hdr_len, gso_size, cs, co, num_buffers = struct.unpack("<BBHHHHH", written[:12])
    assert (flags, gso, hdr_len, gso_size, cs, co, num_buffers) == (0, 0, 0, 0, 0, 0, 1)
    assert written[12:] == frame
    assert drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_VRING


def test_receive_without_a_buffer_returns_false() -> None:
    drv, net, _ = make()
    assert not net.can_receive()
    assert not net.receive(b"x" * 60)
    drv.queues[RECEIVEQ].add([], [1526])
    assert net.can_receive() and net.receive(b"x" * 60)


def test_receive_before_driver_ok_returns_false() -> None:
    net = VirtioNet(Wire())
    Driver(net)
    assert not net.receive(b"x" * 60)


def test_frame_too_big_for_the_buffer_is_dropped_and_the_buffer_kept() -> None:
    drv, net, _ = make()
    rx = drv.queues[RECEIVEQ]
    head = rx.add([], [40])
    assert net.receive(b"y" * 60)
    assert net.rx_dropped == 1
    assert rx.take_used() == []
    assert net.receive(b"z" * 20)
    assert rx.take_used() == [(head, 32)]


def test_deliver_net_rx_moves_frames_while_buffers_last() -> None:
    drv, net, wire = make()
    wire.rx = [b"a" * 60, b"b" * 60, b"c" * 60]
    drv.queues[RECEIVEQ].add([], [100])
    drv.queues[RECEIVEQ].add([], [100])
    assert deliver_net_rx(net, wire) == 2
    assert wire.rx == [b"c" * 60]
    drv.queues[RECEIVEQ].add([], [100])
    assert deliver_net_rx(net, wire) == 1 and wire.rx == []


def test_oversized_transmit_is_dropped_with_a_warning() -> None:
    drv, _, wire = make()
    tx = drv.queues[TRANSMITQ]
    head = tx.add([HDR + bytes(65536)], [])
    drv.notify(TRANSMITQ)
    assert wire.sent == [] and tx.take_used() == [(head, 0)]
    assert drv.transport.stats.errors == 1 and "no frame" in drv.transport.warnings[0]
    assert not drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET

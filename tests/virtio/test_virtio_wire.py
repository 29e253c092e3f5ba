"""The virtual wire: the responder's replies arrive at a deterministic virtual time."""

from __future__ import annotations

from replayvm.devices.base import ManualClock
from replayvm.virtio.inet import ARPOP_REQUEST, BROADCAST_MAC, ETH_P_ARP, Arp, ethernet
from replayvm.virtio.net import RECEIVEQ, TRANSMITQ, VIRTIO_NET_HDR_SIZE, VirtioNet
from replayvm.virtio.responder import RESPONDER_IP, Responder
from replayvm.virtio.wire import VirtualWire
from tests.virtio.driver import Driver

GUEST_MAC = bytes.fromhex("525400123456")
ARP_REQUEST = ethernet(
    BROADCAST_MAC,
    GUEST_MAC,
    ETH_P_ARP,
    Arp(ARPOP_REQUEST, GUEST_MAC, bytes([10, 0, 2, 15]), bytes(6), RESPONDER_IP).encode(),
)


def make(**kwargs: int) -> tuple[Driver, VirtualWire, ManualClock]:
    clock = ManualClock(1000)
    wire = VirtualWire(Responder(), clock, latency_ns=500, retry_ns=100, **kwargs)
    net = VirtioNet(wire)
    wire.connect(net)
    return Driver(net).start(), wire, clock


def send_arp(drv: Driver) -> None:
    drv.queues[TRANSMITQ].add([bytes(VIRTIO_NET_HDR_SIZE) + ARP_REQUEST], [])
    drv.notify(TRANSMITQ)


def test_reply_is_due_latency_after_the_request() -> None:
    drv, wire, _ = make()
    send_arp(drv)
    assert wire.next_deadline() == 1500


def test_reply_is_delivered_at_the_deadline() -> None:
    drv, wire, _ = make()
    head = drv.queues[RECEIVEQ].add([], [1526])
    send_arp(drv)
    wire.advance(1499)
    assert drv.queues[RECEIVEQ].take_used() == []
    wire.advance(1500)
    [(used, length)] = drv.queues[RECEIVEQ].take_used()
    assert used == head and length == VIRTIO_NET_HDR_SIZE + 42
    assert wire.next_deadline() is None


def test_without_a_receive_buffer_the_wire_retries_then_drops() -> None:
    drv, wire, _ = make(max_retries=3)
    send_arp(drv)
    now = 1500
    for _ in range(3):
        wire.advance(now)
        now = wire.next_deadline()  # type: ignore[assignment]
    assert wire.peek_rx() is not None
    wire.advance(now)
    assert wire.dropped == 1 and wire.peek_rx() is None


def test_wire_state_round_trips() -> None:
    drv, wire, clock = make()
    send_arp(drv)
    other = VirtualWire(Responder(), clock)
    other.load_state(wire.save_state())
    assert other.save_state() == wire.save_state()
    assert other.peek_rx() == wire.peek_rx()

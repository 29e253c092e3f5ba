"""virtio-console (virtio 1.2 §5.3), one port: transmitq to on_output, receive() into receiveq."""

from __future__ import annotations

from replayvm.virtio.console import RECEIVEQ, TRANSMITQ, VirtioConsole
from replayvm.virtio.mmio import VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INTERRUPT_STATUS
from tests.virtio.driver import Driver


def make() -> tuple[Driver, VirtioConsole, list[bytes]]:
    out: list[bytes] = []
    console = VirtioConsole(out.append)
    return Driver(console).start(), console, out


def test_transmitted_bytes_reach_on_output_in_order() -> None:
    drv, _, out = make()
    tx = drv.queues[TRANSMITQ]
    tx.add([b"hello, "], [])
    tx.add([b"virtio", b"-console\n"], [])
    drv.notify(TRANSMITQ)
    assert b"".join(out) == b"hello, virtio-console\n"
    assert [length for _, length in tx.take_used()] == [0, 0]
    assert drv.transport.stats.bytes_in == 22


def test_receive_fills_posted_buffers_and_interrupts() -> None:
    drv, console, _ = make()
    rx = drv.queues[RECEIVEQ]
    a = rx.add([], [4])
    b = rx.add([], [4])
    assert console.can_receive()
    assert console.receive(b"abcdefghij") == 8
    assert rx.take_used() == [(a, 4), (b, 4)]
    assert rx.written(a, 4) + rx.written(b, 4) == b"abcdefgh"
    assert drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_VRING
    assert not console.can_receive()
    assert console.receive(b"ij") == 0


def test_receive_before_the_driver_is_ready_accepts_nothing() -> None:
    console = VirtioConsole(lambda data: None)
    drv = Driver(console)
    assert console.receive(b"x") == 0
    drv.negotiate()
    drv.setup_queue(RECEIVEQ).add([], [4])
    assert console.receive(b"x") == 0  # no DRIVER_OK yet


def test_config_space_reads_zero() -> None:
    drv, _, _ = make()
    assert [drv.config(i, 4) for i in (0, 4, 8)] == [0, 0, 0]

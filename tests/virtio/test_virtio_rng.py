"""virtio-entropy (virtio 1.2 §5.4): buffers filled from the board's entropy callable."""

from __future__ import annotations

from replayvm.virtio.device import VIRTIO_ID_ENTROPY
from replayvm.virtio.mmio import VIRTIO_MMIO_DEVICE_ID
from replayvm.virtio.rng import VirtioRng
from tests.virtio.driver import Driver


class CountingEntropy:
    def __init__(self) -> None:
        self.requests: list[int] = []
        self.next = 0

    def __call__(self, n: int) -> bytes:
        self.requests.append(n)
        out = bytes((self.next + i) & 0xFF for i in range(n))
        self.next += n
        return out


def test_device_id_is_entropy() -> None:
    assert Driver(VirtioRng(CountingEntropy())).read(VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_ENTROPY == 4


def test_each_request_is_filled_from_the_entropy_callable() -> None:
    source = CountingEntropy()
    drv = Driver(VirtioRng(source)).start()
    dq = drv.queues[0]
    a = dq.add([], [16])
    b = dq.add([], [8, 8])
    drv.notify(0)
    assert dq.take_used() == [(a, 16), (b, 16)]
    assert dq.written(a, 16) == bytes(range(16))
    assert dq.written(b, 16) == bytes(range(16, 32))
    assert source.requests == [16, 16]


def test_requests_are_capped() -> None:
    source = CountingEntropy()
    drv = Driver(VirtioRng(source, max_request=32)).start()
    head = drv.queues[0].add([], [100])
    drv.notify(0)
    assert drv.queues[0].take_used() == [(head, 32)]


def test_a_short_answer_fills_less() -> None:
    drv = Driver(VirtioRng(lambda n: b"\x01\x02")).start()
    head = drv.queues[0].add([], [10])
    drv.notify(0)
    assert drv.queues[0].take_used() == [(head, 2)]


def test_no_entropy_is_drawn_before_driver_ok() -> None:
    source = CountingEntropy()
    drv = Driver(VirtioRng(source))
    drv.negotiate()
    drv.setup_queue(0).add([], [4])
    drv.notify(0)
    assert source.requests == []

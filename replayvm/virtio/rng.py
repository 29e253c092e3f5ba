"""virtio-entropy, a.k.a. virtio-rng (virtio 1.2 §5.4): one request queue.

Each request is a device-writable buffer that the device fills with
entropy (§5.4.6). The bytes come from ``entropy(n)``, which the board
routes through the host layer so that the recorder logs them and the
replayer feeds the same bytes back: this module never draws randomness
itself.
"""

from __future__ import annotations

from collections.abc import Callable

from replayvm.virtio.device import VIRTIO_ID_ENTROPY, VirtioBackend
from replayvm.virtio.queue import DescriptorChain

REQUESTQ = 0
MAX_REQUEST = 4096  # bytes per request: the device MAY fill less than the buffer (§5.4.6.1)


class VirtioRng(VirtioBackend):
    device_id = VIRTIO_ID_ENTROPY
    name = "rng"
    queue_names = ("requestq",)
    queue_num_max = 64

    def __init__(self, entropy: Callable[[int], bytes], max_request: int = MAX_REQUEST) -> None:
        super().__init__()
        self.entropy = entropy
        self.max_request = max_request

    def queue_notify(self, index: int) -> None:
        if index == REQUESTQ:
            self.drain(REQUESTQ, self._fill)

    def _fill(self, chain: DescriptorChain) -> int:
        wanted = min(chain.writable_length, self.max_request)
        if not wanted:
            return 0
        return chain.write(bytes(self.entropy(wanted))[:wanted])

"""virtio-console (virtio 1.2 §5.3): a single port, no multiport.

Queue 0 (receiveq) carries bytes to the guest, queue 1 (transmitq) bytes
from it. No feature bits are offered, so the configuration space (cols,
rows, max_nr_ports, emerg_wr) only reads as zeros.

Output goes to ``on_output`` synchronously inside the QueueNotify exit.
Input is asynchronous: the board calls :meth:`VirtioConsole.receive` at a
slice boundary with bytes from the host, and keeps what was not accepted
for later, like QEMU's chardev front end.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from replayvm.virtio.device import VIRTIO_ID_CONSOLE, VirtioBackend
from replayvm.virtio.queue import DescriptorChain

VIRTIO_CONSOLE_F_SIZE = 0
VIRTIO_CONSOLE_F_MULTIPORT = 1
VIRTIO_CONSOLE_F_EMERG_WRITE = 2

RECEIVEQ = 0
TRANSMITQ = 1


class VirtioConsole(VirtioBackend):
    device_id = VIRTIO_ID_CONSOLE
    name = "console"
    queue_names = ("receiveq", "transmitq")
    queue_num_max = 256

    def __init__(self, on_output: Callable[[bytes], None]) -> None:
        super().__init__()
        self.on_output = on_output

    def config_space(self) -> bytes:
        return struct.pack("<HHII", 0, 0, 0, 0)

    def queue_notify(self, index: int) -> None:
        if index == TRANSMITQ:
            self.drain(TRANSMITQ, self._transmit)

    def _transmit(self, chain: DescriptorChain) -> int:
        data = chain.read()
        self.link.stats.bytes_in += len(data)
        if data:
            self.on_output(data)
        return 0

    def can_receive(self) -> bool:
        q = self.link.queue(RECEIVEQ)
        return q is not None and q.pending() > 0

    def receive(self, data: bytes) -> int:
        """Fill the guest's receive buffers with a prefix of ``data``; returns its length."""
        link = self.link
        q = link.queue(RECEIVEQ)
        if q is None:
            return 0
        taken = 0
        while taken < len(data) and (chain := q.pop()) is not None:
            n = chain.write(data[taken:])
            q.push(chain.head, n)
            taken += n
            link.stats.requests += 1
            link.stats.bytes_out += n
        link.signal_used(RECEIVEQ)
        return taken

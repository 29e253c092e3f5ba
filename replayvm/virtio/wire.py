"""A virtual wire between virtio-net and a deterministic peer, timed in virtual time.

The built-in :class:`~replayvm.virtio.responder.Responder` answers as a
pure function of what the guest sent, so its replies need not be logged
as host input: they only need a deterministic arrival time. The wire is a
timed device (:meth:`next_deadline` / :meth:`advance`, like the PIT): a
frame the guest transmits at virtual time *t* makes the peer's replies due
at *t* + ``latency_ns``; at that deadline the machine calls ``advance``,
which moves them into the guest's receive buffers and interrupts it. While
the guest has no receive buffer the wire retries every ``retry_ns``, and
drops a frame after ``max_retries`` tries, as a full NIC queue would; it
never waits forever, so a guest that stops receiving cannot keep the
machine from going idle.

A peer behind the host (a UDP tunnel) is different: its frames are host
input, logged by the recorder and delivered at logged icounts with
:func:`~replayvm.virtio.board.deliver_net_rx` instead.
"""

from __future__ import annotations

from typing import Any

from replayvm.devices.base import Clock, Device
from replayvm.virtio.board import deliver_net_rx
from replayvm.virtio.net import NetBackend, VirtioNet

DEFAULT_LATENCY_NS = 10_000  # 10 µs: a LAN round trip
DEFAULT_RETRY_NS = 100_000
DEFAULT_MAX_RETRIES = 1000  # 0.1 s of virtual time without a receive buffer


class VirtualWire(Device):
    """Pass to :class:`VirtioNet` as its back-end, then call :meth:`connect`."""

    name = "virtio-net-wire"

    def __init__(
        self,
        peer: NetBackend,
        clock: Clock,
        *,
        latency_ns: int = DEFAULT_LATENCY_NS,
        retry_ns: int = DEFAULT_RETRY_NS,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.peer = peer
        self.clock = clock
        self.latency_ns = latency_ns
        self.retry_ns = retry_ns
        self.max_retries = max_retries
        self.net: VirtioNet | None = None
        self.deadline: int | None = None
        self.retries = 0
        self.dropped = 0

    def connect(self, net: VirtioNet) -> None:
        self.net = net

    # -- NetBackend, as the device sees it ----------------------------------------------------
    def transmit(self, frame: bytes) -> None:
        self.peer.transmit(frame)
        if self.deadline is None and self.peer.peek_rx() is not None:
            self.deadline = self.clock.now() + self.latency_ns

    def peek_rx(self) -> bytes | None:
        return self.peer.peek_rx()

    def pop_rx(self) -> bytes:
        return self.peer.pop_rx()

    # -- timed device ---------------------------------------------------------------------------
    def next_deadline(self) -> int | None:
        return self.deadline

    def advance(self, now: int) -> None:
        if self.deadline is None or now < self.deadline:
            return
        if self.net is not None and deliver_net_rx(self.net, self.peer):
            self.retries = 0
        if self.peer.peek_rx() is None:
            self.deadline = None
            return
        self.retries += 1
        if self.retries > self.max_retries:
            self.peer.pop_rx()
            self.dropped += 1
            self.retries = 0
        self.deadline = now + self.retry_ns

    def save_state(self) -> dict[str, Any]:
        peer_state = getattr(self.peer, "save_state", None)
        return {
            "deadline": self.deadline,
            "retries": self.retries,
            "dropped": self.dropped,
            "peer": peer_state() if peer_state is not None else {},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.deadline = state["deadline"]
        self.retries = state["retries"]
        self.dropped = state["dropped"]
        peer_load = getattr(self.peer, "load_state", None)
        if peer_load is not None:
            peer_load(state["peer"])

"""A tiny deterministic network peer behind virtio-net, after QEMU's user-mode
("slirp") gateway: it owns 10.0.2.2 with MAC 52:55:0a:00:02:02, answers ARP
requests for that address (RFC 826) and ICMP echo requests to it (RFC 792),
the way slirp's ``arp_input`` and ``icmp_reflect`` do (replies carry TTL
255). Everything else is dropped.

It implements :class:`~replayvm.virtio.net.NetBackend`: replies are a pure
function of what the guest sent, queued until the board delivers them at a
slice boundary. The queue is bounded; a guest flooding it loses the oldest
replies, as a real link would.
"""

from __future__ import annotations

from collections import deque

from replayvm.virtio.inet import (
    ARPOP_REPLY,
    ARPOP_REQUEST,
    ETH_P_ARP,
    ETH_P_IP,
    ICMP_ECHO,
    ICMP_ECHOREPLY,
    IPPROTO_ICMP,
    Arp,
    Ipv4,
    ethernet,
    icmp_echo,
    parse_ethernet,
    parse_icmp_echo,
)

RESPONDER_IP = bytes([10, 0, 2, 2])
RESPONDER_MAC = bytes.fromhex("52550a000202")
REPLY_TTL = 255  # slirp's icmp_reflect: MAXTTL
MAX_PENDING = 64


class Responder:
    """ARP and ping answers for one IPv4 address."""

    def __init__(self, ip: bytes = RESPONDER_IP, mac: bytes = RESPONDER_MAC, max_pending: int = MAX_PENDING) -> None:
        self.ip = ip
        self.mac = mac
        self._pending: deque[bytes] = deque(maxlen=max_pending)
        self._ident = 0
        self.received = 0
        self.answered = 0

    # -- NetBackend ------------------------------------------------------------------------
    def transmit(self, frame: bytes) -> None:
        self.received += 1
        parsed = parse_ethernet(frame)
        if parsed is None:
            return
        _, src_mac, ethertype, payload = parsed
        reply = None
        if ethertype == ETH_P_ARP:
            reply = self._arp(payload)
        elif ethertype == ETH_P_IP:
            reply = self._ip(src_mac, payload)
        if reply is not None:
            self.answered += 1
            self._pending.append(reply)

    def peek_rx(self) -> bytes | None:
        return self._pending[0] if self._pending else None

    def pop_rx(self) -> bytes:
        return self._pending.popleft()

    # -- protocols ---------------------------------------------------------------------------
    def _arp(self, payload: bytes) -> bytes | None:
        arp = Arp.parse(payload)
        if arp is None or arp.op != ARPOP_REQUEST or arp.target_ip != self.ip:
            return None
        answer = Arp(ARPOP_REPLY, self.mac, self.ip, arp.sender_mac, arp.sender_ip)
        return ethernet(arp.sender_mac, self.mac, ETH_P_ARP, answer.encode())

    def _ip(self, src_mac: bytes, payload: bytes) -> bytes | None:
        packet = Ipv4.parse(payload)
        if packet is None or packet.dst != self.ip or packet.proto != IPPROTO_ICMP:
            return None
        echo = parse_icmp_echo(packet.payload)
        if echo is None or echo[0] != ICMP_ECHO:
            return None
        _, ident, seq, data = echo
        self._ident = (self._ident + 1) & 0xFFFF
        reply = Ipv4(
            self.ip, packet.src, IPPROTO_ICMP, icmp_echo(ICMP_ECHOREPLY, ident, seq, data), REPLY_TTL, self._ident
        )
        return ethernet(src_mac, self.mac, ETH_P_IP, reply.encode())

    # -- state -------------------------------------------------------------------------------
    def save_state(self) -> dict[str, object]:
        return {"pending": list(self._pending), "ident": self._ident}

    def load_state(self, state: dict[str, object]) -> None:
        self._pending.clear()
        self._pending.extend(state["pending"])  # type: ignore[arg-type]
        self._ident = state["ident"]  # type: ignore[assignment]

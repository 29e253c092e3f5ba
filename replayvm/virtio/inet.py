"""The few Ethernet, ARP, IPv4 and ICMP encodings the responder speaks.

Ethernet II (IEEE 802.3 clause 3.2.6 type field), ARP (RFC 826), IPv4
(RFC 791), ICMP echo (RFC 792), the Internet checksum (RFC 1071).
Parsers return None for anything they do not understand: frames come
from the guest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ETH_ALEN = 6
ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
BROADCAST_MAC = b"\xff" * ETH_ALEN

ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
ARP_LEN = 28

IPPROTO_ICMP = 1
IPV4_MIN_HLEN = 20
ICMP_ECHOREPLY = 0
ICMP_ECHO = 8

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")


def internet_checksum(data: bytes) -> int:
    """RFC 1071: one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return _ETH.pack(dst, src, ethertype) + payload


def parse_ethernet(frame: bytes) -> tuple[bytes, bytes, int, bytes] | None:
    """(destination, source, ethertype, payload)."""
    if len(frame) < ETH_HLEN:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame)
    return dst, src, ethertype, frame[ETH_HLEN:]


@dataclass(frozen=True, slots=True)
class Arp:
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes

    def encode(self) -> bytes:
        return _ARP.pack(
            ARPHRD_ETHER,
            ETH_P_IP,
            ETH_ALEN,
            4,
            self.op,
            self.sender_mac,
            self.sender_ip,
            self.target_mac,
            self.target_ip,
        )

    @classmethod
    def parse(cls, payload: bytes) -> Arp | None:
        if len(payload) < ARP_LEN:
            return None
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(payload)
        if (htype, ptype, hlen, plen) != (ARPHRD_ETHER, ETH_P_IP, ETH_ALEN, 4):
            return None
        return cls(op, sha, spa, tha, tpa)


@dataclass(frozen=True, slots=True)
class Ipv4:
    src: bytes
    dst: bytes
    proto: int
    payload: bytes
    ttl: int = 64
    ident: int = 0
    tos: int = 0

    def encode(self) -> bytes:
        """A 20-byte header (no options), Don't Fragment clear, with its checksum."""
        total = IPV4_MIN_HLEN + len(self.payload)
        header = _IPV4.pack(0x45, self.tos, total, self.ident, 0, self.ttl, self.proto, 0, self.src, self.dst)
        header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
        return header + self.payload

    @classmethod
    def parse(cls, packet: bytes) -> Ipv4 | None:
        """A valid, unfragmented datagram, or None."""
        if len(packet) < IPV4_MIN_HLEN:
            return None
        vihl, tos, total, ident, frag, ttl, proto, _, src, dst = _IPV4.unpack_from(packet)
        hlen = (vihl & 0xF) * 4
        if vihl >> 4 != 4 or hlen < IPV4_MIN_HLEN or not hlen <= total <= len(packet):
            return None
        if internet_checksum(packet[:hlen]) != 0 or frag & 0x3FFF:  # bad sum, MF or an offset
            return None
        return cls(src, dst, proto, packet[hlen:total], ttl, ident, tos)


def icmp_echo(icmp_type: int, ident: int, seq: int, data: bytes) -> bytes:
    header = struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq)
    csum = internet_checksum(header + data)
    return header[:2] + struct.pack("!H", csum) + header[4:] + data


def parse_icmp_echo(message: bytes) -> tuple[int, int, int, bytes] | None:
    """(type, identifier, sequence, data) of a well-formed echo or echo reply."""
    if len(message) < 8 or internet_checksum(message) != 0:
        return None
    icmp_type, code, _, ident, seq = struct.unpack_from("!BBHHH", message)
    if icmp_type not in (ICMP_ECHO, ICMP_ECHOREPLY) or code != 0:
        return None
    return icmp_type, ident, seq, message[8:]

"""The built-in responder: ARP and ICMP echo for 10.0.2.2, like QEMU's slirp gateway."""

from __future__ import annotations

import struct

from replayvm.virtio.inet import (
    ARPOP_REPLY,
    ARPOP_REQUEST,
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IP,
    ICMP_ECHO,
    ICMP_ECHOREPLY,
    IPPROTO_ICMP,
    Arp,
    Ipv4,
    ethernet,
    icmp_echo,
    internet_checksum,
    parse_ethernet,
    parse_icmp_echo,
)
from replayvm.virtio.responder import RESPONDER_IP, RESPONDER_MAC, Responder

GUEST_MAC = bytes.fromhex("525400123456")
GUEST_IP = bytes([10, 0, 2, 15])


def arp_request(target: bytes) -> bytes:
    arp = Arp(ARPOP_REQUEST, GUEST_MAC, GUEST_IP, bytes(6), target)
    return ethernet(BROADCAST_MAC, GUEST_MAC, ETH_P_ARP, arp.encode())


def ping(dst: bytes, seq: int, data: bytes = b"replayvm" * 7) -> bytes:
    packet = Ipv4(GUEST_IP, dst, IPPROTO_ICMP, icmp_echo(ICMP_ECHO, 0x1234, seq, data), ttl=64, ident=seq)
    return ethernet(RESPONDER_MAC, GUEST_MAC, ETH_P_IP, packet.encode())


def test_internet_checksum_of_rfc1071_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement 220d).
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"\x01") == ~0x0100 & 0xFFFF


def test_arp_request_for_the_gateway_is_answered() -> None:
    r = Responder()
    r.transmit(arp_request(RESPONDER_IP))
    frame = r.pop_rx()
    dst, src, ethertype, payload = parse_ethernet(frame)  # type: ignore[misc]
    assert (dst, src, ethertype) == (GUEST_MAC, RESPONDER_MAC, ETH_P_ARP)
    assert Arp.parse(payload) == Arp(ARPOP_REPLY, RESPONDER_MAC, RESPONDER_IP, GUEST_MAC, GUEST_IP)
    assert RESPONDER_MAC == bytes.fromhex("52550a000202")


def test_arp_for_another_address_is_ignored() -> None:
    r = Responder()
    r.transmit(arp_request(bytes([10, 0, 2, 99])))
    assert r.peek_rx() is None


def test_ping_to_the_gateway_gets_an_echo_reply_with_valid_checksums() -> None:
    r = Responder()
    r.transmit(ping(RESPONDER_IP, 1))
    dst, src, ethertype, payload = parse_ethernet(r.pop_rx())  # type: ignore[misc]
    assert (dst, src, ethertype) == (GUEST_MAC, RESPONDER_MAC, ETH_P_IP)
    assert internet_checksum(payload[:20]) == 0
    packet = Ipv4.parse(payload)
    assert packet is not None
    assert (packet.src, packet.dst, packet.proto, packet.ttl) == (RESPONDER_IP, GUEST_IP, IPPROTO_ICMP, 255)
    assert internet_checksum(packet.payload) == 0
    assert parse_icmp_echo(packet.payload) == (ICMP_ECHOREPLY, 0x1234, 1, b"replayvm" * 7)


def test_replies_queue_in_order() -> None:
    r = Responder()
    for seq in (1, 2, 3):
        r.transmit(ping(RESPONDER_IP, seq))
    seqs = []
    while r.peek_rx() is not None:
        packet = Ipv4.parse(parse_ethernet(r.pop_rx())[3])  # type: ignore[index]
        seqs.append(parse_icmp_echo(packet.payload)[2])  # type: ignore[union-attr,index]
    assert seqs == [1, 2, 3]


def test_ping_elsewhere_bad_checksums_and_garbage_are_dropped() -> None:
    r = Responder()
    r.transmit(ping(bytes([8, 8, 8, 8]), 1))
    bad = bytearray(ping(RESPONDER_IP, 2))
    bad[14 + 20 + 2] ^= 0xFF  # ICMP checksum
    r.transmit(bytes(bad))
    bad_ip = bytearray(ping(RESPONDER_IP, 3))
    bad_ip[14 + 10] ^= 0xFF  # IP header checksum
    r.transmit(bytes(bad_ip))
    for junk in (b"", b"\x00" * 13, b"\xff" * 14, ethernet(RESPONDER_MAC, GUEST_MAC, ETH_P_IP, b"\x45")):
        r.transmit(junk)
    assert r.peek_rx() is None
    assert r.received == 7 and r.answered == 0


def test_pending_replies_are_bounded() -> None:
    r = Responder(max_pending=4)
    for seq in range(10):
        r.transmit(ping(RESPONDER_IP, seq))
    kept = []
    while r.peek_rx() is not None:
        kept.append(struct.unpack_from("!H", r.pop_rx(), 14 + 20 + 6)[0])
    assert kept == [6, 7, 8, 9]


def test_state_round_trip() -> None:
    r = Responder()
    r.transmit(ping(RESPONDER_IP, 1))
    other = Responder()
    other.load_state(r.save_state())
    assert other.pop_rx() == r.pop_rx()

"""The pcap encoder, checked by parsing its output back."""

from __future__ import annotations

import struct

import pytest

from replayvm.virtio.pcap import LINKTYPE_ETHERNET, PCAP_MAGIC_NANOSECONDS, parse_pcap, pcap_header, pcap_record


def test_global_header_fields() -> None:
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", pcap_header())
    assert (magic, major, minor, zone, sigfigs) == (PCAP_MAGIC_NANOSECONDS, 2, 4, 0, 0)
    assert (snaplen, linktype) == (65535, LINKTYPE_ETHERNET)


def test_records_round_trip_with_virtual_timestamps() -> None:
    frames = [(0, b"\x01" * 60), (1_500_000_123, b"\x02" * 1514), (7 * 10**9, b"")]
    data = pcap_header() + b"".join(pcap_record(f, t) for t, f in frames)
    linktype, records = parse_pcap(data)
    assert linktype == LINKTYPE_ETHERNET
    assert records == [(t, f, len(f)) for t, f in frames]


def test_snaplen_truncates_but_keeps_the_original_length() -> None:
    _, records = parse_pcap(pcap_header(snaplen=16) + pcap_record(b"x" * 100, 5, snaplen=16))
    assert records == [(5, b"x" * 16, 100)]


@pytest.mark.parametrize("cut", [3, 24 + 5, 24 + 16 + 2])
def test_truncated_files_are_refused(cut: int) -> None:
    data = pcap_header() + pcap_record(b"abcd", 1)
    with pytest.raises(ValueError):
        parse_pcap(data[:cut])

"""The pcap capture format, nanosecond variant, for Ethernet frames.

Global header ``{u32 magic 0xa1b23c4d; u16 2; u16 4; i32 0; u32 0; u32
snaplen; u32 linktype}`` then per frame ``{u32 seconds; u32 nanoseconds;
u32 captured length; u32 original length}`` and the bytes (the format of
libpcap's savefile.c and draft-ietf-opsawg-pcap). Timestamps are the
guest's virtual time, so a capture of a replay equals that of the
recording. Writing the file is the host's business; this module only
encodes.
"""

from __future__ import annotations

import struct

PCAP_MAGIC_NANOSECONDS = 0xA1B23C4D
PCAP_VERSION = (2, 4)
LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 65535

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


def pcap_header(snaplen: int = DEFAULT_SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> bytes:
    return _GLOBAL.pack(PCAP_MAGIC_NANOSECONDS, *PCAP_VERSION, 0, 0, snaplen, linktype)


def pcap_record(frame: bytes, time_ns: int, snaplen: int = DEFAULT_SNAPLEN) -> bytes:
    """One packet record stamped with virtual time ``time_ns``."""
    seconds, nanoseconds = divmod(time_ns, 1_000_000_000)
    captured = frame[:snaplen]
    return _RECORD.pack(seconds & 0xFFFFFFFF, nanoseconds, len(captured), len(frame)) + captured


def parse_pcap(data: bytes) -> tuple[int, list[tuple[int, bytes, int]]]:
    """(linktype, [(time_ns, captured bytes, original length)]) of a nanosecond
    capture; raises ValueError on anything else. For tests and tools."""
    if len(data) < _GLOBAL.size:
        raise ValueError("pcap: short global header")
    magic, major, minor, _, _, _, linktype = _GLOBAL.unpack_from(data)
    if magic != PCAP_MAGIC_NANOSECONDS or (major, minor) != PCAP_VERSION:
        raise ValueError(f"pcap: not a little-endian nanosecond pcap 2.4 file (magic {magic:#x})")
    records = []
    pos = _GLOBAL.size
    while pos < len(data):
        if pos + _RECORD.size > len(data):
            raise ValueError(f"pcap: truncated record header at {pos}")
        seconds, nanoseconds, captured, original = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        if pos + captured > len(data):
            raise ValueError(f"pcap: truncated record at {pos}")
        records.append((seconds * 1_000_000_000 + nanoseconds, data[pos : pos + captured], original))
        pos += captured
    return linktype, records

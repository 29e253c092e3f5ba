"""Test helpers for the recording layer: event strategies and a frame builder.

The builder follows docs/FORMAT.md independently of the writer, so tests
that craft files also check that the document describes the real layout.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

from hypothesis import strategies as st

from replayvm.errors import TraceFormatError
from replayvm.log import (
    DeviceResult,
    End,
    Entropy,
    Event,
    NetRx,
    RecordingReader,
    SerialInput,
    Sync,
    WallClock,
)

U64_MAX = (1 << 64) - 1
I64 = st.integers(-(1 << 63), (1 << 63) - 1)
U32 = st.integers(0, (1 << 32) - 1)
U64 = st.integers(0, U64_MAX)
DATA = st.binary(max_size=80)
DIGEST = st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))

MAGIC = b"\x89RVR\r\n\x1a\n"


CHUNK_EVENT: st.SearchStrategy[Event] = st.one_of(
    st.builds(SerialInput, st.just(0), U32, DATA),
    st.builds(WallClock, st.just(0), I64),
    st.builds(Entropy, st.just(0), DATA),
    st.builds(NetRx, st.just(0), U32, DATA),
    st.builds(DeviceResult, st.just(0), U32, DATA),
    st.builds(Sync, st.just(0), U64, DIGEST),
)
"""Any chunk event kind, at icount 0 (sequences move it)."""

DELTA = st.one_of(st.just(0), st.integers(0, 300), st.integers(0, 1 << 40))


@st.composite
def event_sequences(draw, max_size: int = 30) -> list[Event]:
    """Events in non-decreasing icount order, with small and huge deltas."""
    icount = draw(st.one_of(st.just(0), U64))
    events = []
    for delta, event in draw(st.lists(st.tuples(DELTA, CHUNK_EVENT), max_size=max_size)):
        icount = min(U64_MAX, icount + delta)
        events.append(dataclasses.replace(event, icount=icount))
    return events


END = st.builds(
    End,
    st.just(0),
    st.text(max_size=30),
    I64,
    DIGEST,
    st.dictionaries(st.text(max_size=12), I64, max_size=6),
)
"""Any END, at icount 0."""


def sample_events() -> list[Event]:
    """One event of every chunk kind, in icount order."""
    return [
        WallClock(0, 1_764_240_000_000_000_000),
        SerialInput(1_000, 0x3F8, b"root\n"),
        Entropy(2_000, bytes(range(32))),
        NetRx(2_000, 1, b"\xff" * 6 + b"\x52\x54\x00\x12\x34\x56" + b"\x08\x00" + bytes(46)),
        DeviceResult(2_500, 2, b"\x00\x01"),
        Sync(10_000, 0xFFFF_FFFF_8100_0000, bytes(range(16))),
        Sync(20_000, 0x40_1000, bytes(range(32))),
    ]


SAMPLE_END = End(30_000, "guest-exit", 3, b"\xab" * 32, {"exits.io": 12, "exits.hlt": 2})


def preamble(version: int = 1) -> bytes:
    return MAGIC + struct.pack("<H", version)


def frame(
    tag: bytes | int,
    payload: bytes,
    *,
    codec: int = 0,
    raw_len: int | None = None,
    count: int = 0,
    first_icount: int = 0,
    reserved: int = 0,
    stored_len: int | None = None,
    payload_crc: int | None = None,
) -> bytes:
    """A frame per FORMAT.md with correct CRCs unless told otherwise."""
    tag = tag[0] if isinstance(tag, bytes) else tag
    head = struct.pack(
        "<BBHIQQQI",
        tag,
        codec,
        reserved,
        count,
        len(payload) if stored_len is None else stored_len,
        len(payload) if raw_len is None else raw_len,
        first_icount,
        zlib.crc32(payload) if payload_crc is None else payload_crc,
    )
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def header_frame(doc: object | None = None, *, blobs: list | None = None) -> bytes:
    if doc is None:
        doc = {"replayvm": "0.1.0", "unicorn": "2.1.4", "config": {}, "blobs": blobs or []}
    return frame(b"H", json.dumps(doc).encode())


def read_everything(data: bytes) -> tuple[RecordingReader, list[Event]]:
    """Exercise every reading path a replay and ``info`` use."""
    reader = RecordingReader(data)
    events = list(reader.events())
    reader.summary()
    for name in reader.blobs:
        reader.blob(name)
    return reader, events


def outcome(data: bytes) -> tuple[RecordingReader, list[Event]] | TraceFormatError:
    """Reader result or the TraceFormatError; any other exception propagates."""
    try:
        return read_everything(data)
    except TraceFormatError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(data)
        return exc

"""Event kinds, their validation, and the record codec (docs/FORMAT.md)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rvr_helpers import SAMPLE_END, U64_MAX, event_sequences, sample_events

from replayvm.errors import TraceFormatError
from replayvm.log import (
    KINDS,
    DeviceResult,
    End,
    Entropy,
    NetRx,
    SerialInput,
    Sync,
    WallClock,
    kind_name,
)
from replayvm.log.codec import SCHEMA, decode_events, encode_event
from replayvm.log.wire import Cursor, encode_svarint, encode_uvarint

CHUNK_TAGS = frozenset(tag for tag, cls in KINDS.items() if cls is not End)


def encode(events, first_icount):
    out = bytearray()
    previous = first_icount
    for event in events:
        encode_event(out, event, previous)
        previous = event.icount
    return bytes(out)


def decode(payload, first_icount, count, allowed=CHUNK_TAGS):
    return list(decode_events(payload, first_icount=first_icount, count=count, offset=0, where="test", allowed=allowed))


def test_tags_are_stable():
    # Tags are on disk: changing one breaks every existing recording.
    assert {tag: cls.__name__ for tag, cls in KINDS.items()} == {
        1: "SerialInput",
        2: "WallClock",
        3: "Entropy",
        4: "NetRx",
        5: "DeviceResult",
        6: "Sync",
        7: "End",
    }
    assert all(tag == cls.TAG for tag, cls in KINDS.items())


def test_schema_lists_every_dataclass_field_after_icount():
    for cls in KINDS.values():
        names = [f.name for f in dataclasses.fields(cls)]
        assert names[0] == "icount"
        assert [f.name for f in SCHEMA[cls]] == names[1:]


def test_kind_name_accepts_tag_event_and_class():
    assert kind_name(6) == "sync"
    assert kind_name(Sync) == "sync"
    assert kind_name(SerialInput(0, 0x3F8, b"x")) == "serial-input"
    assert kind_name(0x55) == "unknown-0x55"


@pytest.mark.parametrize("event", [*sample_events(), SAMPLE_END], ids=lambda e: e.KIND)
def test_each_kind_round_trips_through_the_codec(event):
    allowed = frozenset({event.TAG})
    assert decode(encode([event], event.icount), event.icount, 1, allowed) == [event]


def test_first_record_has_delta_zero_and_later_records_are_delta_coded():
    events = [Sync(1_000_000, 1, bytes(16)), Sync(1_000_005, 1, bytes(16))]
    payload = encode(events, 1_000_000)
    assert payload[1] == 0  # tag 6, delta 0
    assert payload[1 + 1 + 1 + 1 + 16 + 1] == 5  # second record's delta


@pytest.mark.parametrize(
    "make",
    [
        lambda: Sync(-1, 0, bytes(16)),
        lambda: Sync(1 << 64, 0, bytes(16)),
        lambda: Sync(0, 0, bytes(20)),
        lambda: SerialInput(0, 1 << 32, b""),
        lambda: SerialInput(True, 0, b""),
        lambda: Entropy(0, "text"),
        lambda: Entropy(0, bytes((1 << 20) + 1)),
        lambda: WallClock(0, 1 << 63),
        lambda: End(0, "x" * 1025, 0, bytes(16), {}),
        lambda: End(0, "ok", 0, bytes(16), {"k": 1 << 63}),
        lambda: End(0, "ok", 0, bytes(16), {1: 1}),
        lambda: End(0, "\ud800", 0, bytes(16), {}),
    ],
)
def test_events_refuse_fields_the_format_cannot_hold(make):
    with pytest.raises((TypeError, ValueError)):
        make()


def test_bytes_like_fields_are_stored_as_bytes():
    event = NetRx(0, 1, bytearray(b"abc"))
    assert type(event.frame) is bytes
    assert DeviceResult(0, 1, memoryview(b"v")).value == b"v"


def test_events_are_immutable_and_hashable():
    event = Sync(5, 6, bytes(16))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.rip = 7  # type: ignore[misc]
    assert len({event, Sync(5, 6, bytes(16)), SAMPLE_END}) == 2


def test_end_stats_are_a_read_only_sorted_copy():
    stats = {"b": 1, "a": 2}
    end = End(1, "done", 0, bytes(16), stats)
    stats["c"] = 3
    assert list(end.stats) == ["a", "b"]
    with pytest.raises(TypeError):
        end.stats["a"] = 5  # type: ignore[index]
    assert end == End(1, "done", 0, bytes(16), {"a": 2, "b": 1})


@settings(max_examples=150)
@given(event_sequences())
def test_codec_round_trips_arbitrary_event_sequences(events):
    first = events[0].icount if events else 0
    assert decode(encode(events, first), first, len(events)) == events


def test_end_is_refused_inside_a_chunk():
    with pytest.raises(TraceFormatError, match="unexpected event tag"):
        decode(encode([SAMPLE_END], SAMPLE_END.icount), SAMPLE_END.icount, 1)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x06", "truncated varint"),
        (b"\x06\x80\x00", "non-canonical"),
        (b"\x06" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\x06" + b"\xff" * 9 + b"\x02", "exceeds 64 bits"),
        (b"\x09\x00", "unexpected event tag 0x9"),
        (b"\x06\x00\x00\x10" + bytes(15), "needs 16 bytes"),
        (b"\x06\x00\x00\x14" + bytes(20), "expected one of"),
        (b"\x06\x00\x00\x10" + bytes(16) + b"\x00", "bytes left after"),
        (b"\x06\x05\x00\x10" + bytes(16), "first event is at icount"),
        (b"\x01\x00\x80\x80\x80\x80\x10\x00", "device 4294967296 exceeds"),
    ],
)
def test_malformed_chunk_records_are_located_trace_format_errors(payload, message):
    with pytest.raises(TraceFormatError, match=message) as info:
        decode(payload, 0, 1)
    assert "payload byte" in str(info.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x07\x00\x01\xff\x00\x10" + bytes(16) + b"\x00", "reason is not valid UTF-8"),
        (b"\x07\x00\x00\x00\x10" + bytes(16) + b"\x01\x01\xff\x00", "key is not valid UTF-8"),
        (b"\x07\x00\x00\x00\x10" + bytes(16) + b"\x81\x20", "stats count 4097 exceeds"),
    ],
)
def test_malformed_end_records_are_refused(payload, message):
    with pytest.raises(TraceFormatError, match=message):
        decode(payload, 0, 1, frozenset({End.TAG}))


def test_stats_keys_must_be_strictly_increasing():
    good = bytearray()
    encode_event(good, End(0, "", 0, bytes(16), {"a": 1, "b": 2}), 0)
    bad = bytes(good).replace(b"\x01a\x02\x01b", b"\x01b\x02\x01a")
    with pytest.raises(TraceFormatError, match="strictly increasing"):
        decode(bad, 0, 1, frozenset({End.TAG}))


def test_icount_overflow_is_refused():
    payload = encode([Sync(U64_MAX, 0, bytes(16))], U64_MAX) + b"\x06\x01\x00\x10" + bytes(16)
    with pytest.raises(TraceFormatError, match="overflows"):
        decode(payload, U64_MAX, 2)


@given(st.integers(0, U64_MAX))
def test_uvarint_round_trips_canonically(value):
    out = bytearray()
    encode_uvarint(out, value)
    assert len(out) == max(1, -(-value.bit_length() // 7))
    cursor = Cursor(bytes(out), 0, "test")
    assert cursor.uvarint() == value and cursor.remaining == 0


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_svarint_round_trips_and_small_magnitudes_stay_short(value):
    out = bytearray()
    encode_svarint(out, value)
    assert Cursor(bytes(out), 0, "test").svarint() == value
    if -64 <= value < 64:
        assert len(out) == 1

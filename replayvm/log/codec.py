"""The binary codec of event records (docs/FORMAT.md, "Event records").

A record is ``tag`` (uvarint), ``icount delta`` (uvarint, against the
previous record of the same chunk; the first record's base is the chunk's
``first_icount``, so its delta is 0) and then the kind's fields in the order
of :data:`SCHEMA`. Delta coding keeps the common record (a SYNC a few
thousand instructions after the previous one) to a handful of bytes, and
restarting the base per chunk lets any chunk be decoded on its own.

The schema is a table rather than per-kind code so that the writer, the
reader and docs/FORMAT.md cannot drift apart: a test checks it against the
dataclass fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from replayvm.log.events import (
    KINDS,
    DeviceResult,
    End,
    Entropy,
    Event,
    NetRx,
    SerialInput,
    Sync,
    WallClock,
)
from replayvm.log.format import (
    DIGEST_SIZES,
    MAX_EVENT_DATA,
    MAX_REASON_LEN,
    MAX_STAT_NAME_LEN,
    MAX_STATS,
    U32_MAX,
    U64_MAX,
)
from replayvm.log.wire import Cursor, encode_svarint, encode_uvarint


class _Field:
    """One wire field type: how to append a value and how to read it back."""

    __slots__ = ("name",)
    name: str

    def encode(self, out: bytearray, value: object) -> None:
        raise NotImplementedError

    def decode(self, cur: Cursor) -> object:
        raise NotImplementedError


class _UInt(_Field):
    __slots__ = ("limit",)

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit = name, limit

    def encode(self, out: bytearray, value: object) -> None:
        encode_uvarint(out, value)  # type: ignore[arg-type]

    def decode(self, cur: Cursor) -> int:
        return cur.uint(self.limit, self.name)


class _SInt(_Field):
    __slots__ = ()

    def __init__(self, name: str) -> None:
        self.name = name

    def encode(self, out: bytearray, value: object) -> None:
        encode_svarint(out, value)  # type: ignore[arg-type]

    def decode(self, cur: Cursor) -> int:
        return cur.svarint()


class _Bytes(_Field):
    __slots__ = ("limit", "sizes")

    def __init__(self, name: str, limit: int, sizes: tuple[int, ...] = ()) -> None:
        self.name, self.limit, self.sizes = name, limit, sizes

    def encode(self, out: bytearray, value: object) -> None:
        data: bytes = value  # type: ignore[assignment]
        encode_uvarint(out, len(data))
        out += data

    def decode(self, cur: Cursor) -> bytes:
        data = cur.sized_bytes(self.limit, self.name)
        if self.sizes and len(data) not in self.sizes:
            cur.fail(f"{self.name} is {len(data)} bytes, expected one of {self.sizes}")
        return data


class _Str(_Field):
    __slots__ = ("limit",)

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit = name, limit

    def encode(self, out: bytearray, value: object) -> None:
        data = value.encode("utf-8")  # type: ignore[attr-defined]
        encode_uvarint(out, len(data))
        out += data

    def decode(self, cur: Cursor) -> str:
        return cur.sized_str(self.limit, self.name)


class _Stats(_Field):
    """A str -> int64 map: count, then (key, zigzag value) in strictly
    increasing key order, so each map has exactly one encoding."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        self.name = name

    def encode(self, out: bytearray, value: object) -> None:
        stats: Mapping[str, int] = value  # type: ignore[assignment]
        items = sorted((k.encode("utf-8"), v) for k, v in stats.items())
        encode_uvarint(out, len(items))
        for key, number in items:
            encode_uvarint(out, len(key))
            out += key
            encode_svarint(out, number)

    def decode(self, cur: Cursor) -> dict[str, int]:
        count = cur.uint(MAX_STATS, "stats count")
        stats: dict[str, int] = {}
        previous = b""
        for i in range(count):
            key = cur.sized_bytes(MAX_STAT_NAME_LEN, "stats key")
            if i and key <= previous:
                cur.fail("stats keys are not strictly increasing")
            previous = key
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                cur.fail("stats key is not valid UTF-8")
            stats[name] = cur.svarint()
        return stats


_DIGEST = _Bytes("digest", max(DIGEST_SIZES), DIGEST_SIZES)

SCHEMA: Mapping[type[Event], tuple[_Field, ...]] = {
    SerialInput: (_UInt("device", U32_MAX), _Bytes("data", MAX_EVENT_DATA)),
    WallClock: (_SInt("unix_ns"),),
    Entropy: (_Bytes("data", MAX_EVENT_DATA),),
    NetRx: (_UInt("device", U32_MAX), _Bytes("frame", MAX_EVENT_DATA)),
    DeviceResult: (_UInt("device", U32_MAX), _Bytes("value", MAX_EVENT_DATA)),
    Sync: (_UInt("rip", U64_MAX), _DIGEST),
    End: (_Str("reason", MAX_REASON_LEN), _SInt("status"), _DIGEST, _Stats("stats")),
}
"""Wire fields of each kind, after the common tag and icount delta."""

_BY_TAG = {cls.TAG: (cls, SCHEMA[cls]) for cls in KINDS.values()}


def encode_event(out: bytearray, event: Event, previous_icount: int) -> None:
    """Append ``event``'s record to ``out``, delta-coded against ``previous_icount``.

    The caller guarantees ``event.icount >= previous_icount`` (the writer
    keeps the log in icount order).
    """
    cls = type(event)
    encode_uvarint(out, cls.TAG)
    encode_uvarint(out, event.icount - previous_icount)
    for f in SCHEMA[cls]:
        f.encode(out, getattr(event, f.name))


def decode_events(
    payload: bytes,
    *,
    first_icount: int,
    count: int,
    offset: int,
    where: str,
    allowed: frozenset[int],
) -> Iterator[Event]:
    """Decode exactly ``count`` records filling all of ``payload``, lazily.

    A generator, so that a hostile chunk of millions of tiny records costs
    one event of memory at a time; a malformed record raises after the
    records before it were yielded. ``allowed`` is the set of tags this
    container may hold (END only in the END frame, never in a chunk). The
    first record must sit at ``first_icount`` exactly. Failures raise
    TraceFormatError located at the container's file ``offset``.
    """
    cur = Cursor(payload, offset, where)
    icount = first_icount
    for i in range(count):
        tag = cur.uvarint()
        entry = _BY_TAG.get(tag) if tag in allowed else None
        if entry is None:
            cur.fail(f"event {i}: unexpected event tag {tag:#x} ({_tag_label(tag)})")
        cls, fields = entry
        delta = cur.uvarint()
        if i == 0 and delta != 0:
            cur.fail(f"first event is at icount {first_icount + delta}, header says {first_icount}")
        icount += delta
        if icount > U64_MAX:
            cur.fail(f"event {i}: icount overflows 64 bits")
        values = [f.decode(cur) for f in fields]
        try:
            event = cls(icount, *values)  # type: ignore[call-arg]
        except (TypeError, ValueError) as exc:
            # Unreachable while the field decoders enforce the constructors'
            # limits; kept so a future mismatch is a format error, not a crash.
            cur.fail(f"event {i} ({cls.KIND}): {exc}")
        yield event
    if cur.remaining:
        cur.fail(f"{cur.remaining} bytes left after the declared {count} events")


def _tag_label(tag: int) -> str:
    cls = KINDS.get(tag)
    return cls.KIND if cls is not None else "unknown kind"

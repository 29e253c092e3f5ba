"""Reads ``.rvr`` recordings: the only code that parses the format.

A recording is untrusted input (a bug report attachment). Every length the
file declares is checked against a hard limit and against the bytes left in
the file before anything is read or allocated; decompression is bounded by
the declared size and must produce exactly that size; every failure is a
:class:`TraceFormatError` with the file offset of the frame at fault.

Truncation versus corruption (docs/FORMAT.md, "Incomplete files"): the
writer only ever appends whole frames, so a recorder that died leaves a
prefix of a valid file in which only the last frame can be partial. Hence:

* a frame that runs past the end of the file (its 40-byte header, or the
  payload that a valid header declares) is a *truncated tail*: reading stops
  there, the recording is incomplete, every event before it is readable;
* a frame that lies entirely inside the file and fails any check (header
  CRC, tag, limits, payload CRC, decoding) is *corruption*, wherever it is;
* a tail of zero bytes (what a filesystem can leave after a power loss) is
  a truncated tail too: no frame starts with a zero byte;
* a tail cut inside the header or the blobs is an error too: such a file
  holds no replayable run.

Opening a reader walks and checks every frame header and every event chunk's
CRC, so ``complete``, ``end`` and ``truncated_at`` are known at once; events
are decoded lazily by :meth:`RecordingReader.events`, blobs on request.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import BinaryIO, Self

import lz4.block
import lz4.frame

from replayvm.errors import TraceFormatError
from replayvm.log.codec import decode_events
from replayvm.log.events import KINDS, End, Event
from replayvm.log.format import (
    CODEC_LZ4_BLOCK,
    CODEC_LZ4_FRAME,
    CODEC_STORED,
    CODECS,
    FORMAT_VERSION,
    FRAME_HEADER,
    FRAME_HEADER_CRC_SPAN,
    FRAME_HEADER_SIZE,
    FRAME_NAMES,
    LZ4_MAX_EXPANSION,
    MAGIC,
    MAX_ANCILLARY_SIZE,
    MIN_EVENT_SIZE,
    PREAMBLE,
    PREAMBLE_SIZE,
    RAW_LIMITS,
    TAG_BLOB,
    TAG_CHUNK,
    TAG_END,
    TAG_HEADER,
    is_ancillary_tag,
    is_known_tag_shape,
    max_stored_len,
)
from replayvm.log.header import BlobInfo, RecordingHeader, decode_header

_CHUNK_TAGS = frozenset(tag for tag, cls in KINDS.items() if cls is not End)
_END_TAGS = frozenset({End.TAG})
_CRC_PIECE = 1 << 20


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """One frame's header as read from the file (docs/FORMAT.md, "Frames")."""

    offset: int
    tag: int
    codec: int
    count: int
    stored_size: int
    raw_size: int
    first_icount: int
    payload_crc: int

    @property
    def payload_offset(self) -> int:
        return self.offset + FRAME_HEADER_SIZE

    @property
    def end(self) -> int:
        return self.offset + FRAME_HEADER_SIZE + self.stored_size

    @property
    def name(self) -> str:
        return FRAME_NAMES.get(self.tag) or f"ancillary {chr(self.tag)!r}"


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    """What ``replayvm info`` shows; sizes in bytes, ratios raw/stored."""

    header: RecordingHeader
    file_size: int
    complete: bool
    truncated_at: int | None
    end: End | None
    blobs: tuple[BlobInfo, ...]
    chunks: int
    events: int
    event_counts: dict[str, int]
    first_icount: int | None
    last_icount: int | None
    event_bytes: int
    event_stored_bytes: int

    @property
    def blob_bytes(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def blob_stored_bytes(self) -> int:
        return sum(b.stored_size for b in self.blobs)

    @property
    def event_ratio(self) -> float | None:
        return self.event_bytes / self.event_stored_bytes if self.event_stored_bytes else None

    @property
    def blob_ratio(self) -> float | None:
        stored = self.blob_stored_bytes
        return self.blob_bytes / stored if stored else None


class _Source:
    """Random access to the file's bytes, up to the size it had when opened.

    A recording still being written keeps growing; the reader sees the
    prefix that existed at open time, which is itself a valid (incomplete)
    recording.
    """

    def __init__(self, source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> None:
        self._file: BinaryIO | None = None
        self._data: bytes | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            self._data = bytes(source)
            self.size = len(self._data)
        elif isinstance(source, str | os.PathLike):
            self._file = open(source, "rb")  # noqa: SIM115 - held until close()
            self.size = os.fstat(self._file.fileno()).st_size
        else:
            raise TypeError(f"cannot read a recording from {type(source).__name__}")
        self.closed = False

    def read(self, offset: int, n: int) -> bytes:
        """Exactly ``n`` bytes at ``offset`` (the caller checked they exist)."""
        if self.closed:
            raise ValueError("I/O on a closed RecordingReader")
        if self._data is not None:
            data = self._data[offset : offset + n]
        else:
            assert self._file is not None
            self._file.seek(offset)
            data = self._file.read(n)
        if len(data) != n:
            raise TraceFormatError("the file shrank while it was being read", offset)
        return data

    def crc32(self, offset: int, n: int) -> int:
        """CRC-32 of a range, read in bounded pieces (ancillary frames can be large)."""
        crc = 0
        while n:
            piece = min(n, _CRC_PIECE)
            crc = zlib.crc32(self.read(offset, piece), crc)
            offset += piece
            n -= piece
        return crc

    def zero_from(self, offset: int) -> bool:
        """True if every byte from ``offset`` to the end is zero.

        A filesystem that lost power after extending the file but before
        writing its data leaves such a tail; no frame starts with a zero tag.
        """
        if offset < self.size and self.read(offset, 1) != b"\0":
            return False  # the common case: a frame's tag
        while offset < self.size:
            piece = self.read(offset, min(self.size - offset, _CRC_PIECE))
            if piece.count(0) != len(piece):
                return False
            offset += len(piece)
        return True

    def close(self) -> None:
        self.closed = True
        if self._file is not None:
            self._file.close()


class RecordingReader:
    """A recording opened for reading: header, blobs, events, END.

    ``source`` is a path or the file's bytes. Construction raises
    TraceFormatError if the file is not a readable recording; an incomplete
    recording (no END: the recorder died) opens fine with ``complete``
    False and ``truncated_at`` set. Failing to open a path at all is the
    usual OSError: that is not a property of the file's contents.
    """

    header: RecordingHeader
    """Format and tool versions and the machine config."""
    blobs: Mapping[str, BlobInfo]
    """Blob metadata by name, in file order."""
    end: End | None
    """The END event, or None for an incomplete recording."""
    truncated_at: int | None
    """Offset of the first byte not in a complete frame, if incomplete."""
    events_offset: int
    """Where the event area begins: the end of the header and blob frames."""

    def __init__(self, source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> None:
        self._src = _Source(source)
        # Offsets only: a hostile file of many tiny chunks must not turn into
        # an index many times its size.
        self._chunk_offsets = array("Q")
        self._blob_frames: dict[str, FrameInfo] = {}
        self._ancillary: list[FrameInfo] = []
        self._end_offset = 0
        self.end = None
        self.truncated_at = None
        try:
            self._scan()
        except BaseException:
            self._src.close()
            raise

    # -- public API ---------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True if the recording ends with a valid END frame (a finished run)."""
        return self.end is not None

    @property
    def file_size(self) -> int:
        return self._src.size

    @property
    def chunks(self) -> tuple[FrameInfo, ...]:
        """The complete event chunks, in file order."""
        return tuple(self._iter_chunks())

    def ancillary(self, tag: str, max_size: int = 1 << 20) -> list[bytes]:
        """Payloads of the ancillary frames with ``tag`` (e.g. ``"r"``: a bug
        report's note and expectations), each at most ``max_size`` bytes."""
        found = []
        for frame in self._ancillary:
            if frame.tag == ord(tag):
                if frame.raw_size > max_size:
                    raise TraceFormatError(
                        f"ancillary {tag!r} frame of {frame.raw_size} bytes is too large", frame.offset
                    )
                found.append(self._inflate(frame))
        return found

    def blob(self, name: str) -> bytes:
        """The contents of blob ``name``: decompressed within its declared size,
        its length and SHA-256 checked against the header's table."""
        info = self.blobs.get(name)
        if info is None:
            known = ", ".join(self.blobs) or "none"
            raise TraceFormatError(f"recording has no blob {name!r} (it has: {known})")
        data = self._inflate(self._blob_frames[name])
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise TraceFormatError(f"blob {name!r}: SHA-256 mismatch", info.offset)
        return data

    def events(self) -> Iterator[Event]:
        """All events of the complete chunks, in order (END excluded: see ``end``).

        Raises TraceFormatError, after yielding every event before it, if a
        chunk's contents are malformed.
        """
        last: int | None = None
        for frame in self._iter_chunks():
            if last is not None and frame.first_icount < last:
                raise TraceFormatError(
                    f"chunk starts at icount {frame.first_icount}, before the previous event at {last}",
                    frame.offset,
                )
            for event in decode_events(
                self._inflate(frame),
                first_icount=frame.first_icount,
                count=frame.count,
                offset=frame.offset,
                where=f"chunk of {frame.count} events",
                allowed=_CHUNK_TAGS,
            ):
                yield event
                last = event.icount
        if self.end is not None and last is not None and self.end.icount < last:
            raise TraceFormatError(
                f"END at icount {self.end.icount} precedes the last event at {last}",
                self._end_offset,
            )

    def summary(self) -> RecordingSummary:
        """Counts and sizes for ``replayvm info``; decodes every event once."""
        counts = {cls.KIND: 0 for cls in KINDS.values() if cls is not End}
        chunks = raw = stored = 0
        for frame in self._iter_chunks():
            chunks += 1
            raw += frame.raw_size
            stored += frame.stored_size
        first: int | None = None
        last: int | None = None
        total = 0
        for event in self.events():
            counts[event.KIND] += 1
            if first is None:
                first = event.icount
            last = event.icount
            total += 1
        return RecordingSummary(
            header=self.header,
            file_size=self.file_size,
            complete=self.complete,
            truncated_at=self.truncated_at,
            end=self.end,
            blobs=tuple(self.blobs.values()),
            chunks=chunks,
            events=total,
            event_counts=counts,
            first_icount=first,
            last_icount=last,
            event_bytes=raw,
            event_stored_bytes=stored,
        )

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- structure ------------------------------------------------------------

    def _scan(self) -> None:
        """Walk the frames once: header, blobs, then chunks up to END or the end."""
        version = self._read_preamble()
        offset = PREAMBLE_SIZE

        frame = self._frame_at(offset)
        if frame is None:
            raise TraceFormatError("the file ends inside its header frame", offset)
        if frame.tag != TAG_HEADER:
            raise TraceFormatError(f"expected the header frame, found a {frame.name} frame", offset)
        self.header, table = decode_header(self._inflate(frame), version, offset)
        offset = frame.end

        blobs: dict[str, BlobInfo] = {}
        for name, size, sha256 in table:
            frame = self._frame_at(offset)
            if frame is None:
                raise TraceFormatError(
                    f"the file ends inside blob {name!r}: the recorder died while writing "
                    "the header and blobs, nothing to replay",
                    offset,
                )
            if frame.tag != TAG_BLOB:
                raise TraceFormatError(f"expected the frame of blob {name!r}, found a {frame.name} frame", offset)
            if frame.raw_size != size:
                raise TraceFormatError(
                    f"blob {name!r} frame holds {frame.raw_size} bytes, the table says {size}",
                    offset,
                )
            blobs[name] = BlobInfo(name, size, sha256, frame.stored_size, offset)
            self._blob_frames[name] = frame
            offset = frame.end
        self.blobs = MappingProxyType(blobs)
        self.events_offset = offset

        size = self._src.size
        first_icount = 0
        while True:
            if offset == size or self._src.zero_from(offset):
                self.truncated_at = offset
                return
            frame = self._frame_at(offset)
            if frame is None:
                self.truncated_at = offset
                return
            if frame.tag == TAG_CHUNK:
                self._check_crc(frame)
                if frame.first_icount < first_icount:
                    raise TraceFormatError(
                        f"chunk starts at icount {frame.first_icount}, before the previous chunk's {first_icount}",
                        offset,
                    )
                first_icount = frame.first_icount
                self._chunk_offsets.append(offset)
            elif frame.tag == TAG_END:
                self._read_end(frame, first_icount)
                if frame.end != size:
                    raise TraceFormatError(f"{size - frame.end} bytes after END", frame.end)
                return
            elif is_ancillary_tag(frame.tag):
                self._check_crc(frame)
                self._ancillary.append(frame)
            else:
                raise TraceFormatError(f"unexpected {frame.name} frame among the events", offset)
            offset = frame.end

    def _read_preamble(self) -> int:
        head = self._src.read(0, min(self._src.size, PREAMBLE_SIZE))
        if len(head) < PREAMBLE_SIZE:
            if MAGIC.startswith(head[: len(MAGIC)]):
                raise TraceFormatError(f"the file is only {len(head)} bytes long", 0)
            raise TraceFormatError("not a ReplayVM recording (bad magic)", 0)
        magic, version = PREAMBLE.unpack(head)
        if magic != MAGIC:
            raise TraceFormatError("not a ReplayVM recording (bad magic)", 0)
        if version > FORMAT_VERSION:
            raise TraceFormatError(
                f"format version {version} is newer than this ReplayVM reads "
                f"(up to {FORMAT_VERSION}); upgrade replayvm to replay it",
                len(MAGIC),
            )
        if version < 1:
            raise TraceFormatError(f"unknown format version {version}", len(MAGIC))
        return version

    def _frame_at(self, offset: int) -> FrameInfo | None:
        """The checked frame header at ``offset``, or None if the file ends in the frame."""
        left = self._src.size - offset
        if left < FRAME_HEADER_SIZE:
            if left > 0 and not is_known_tag_shape(self._src.read(offset, 1)[0]):
                raise TraceFormatError("bad frame tag in a partial frame", offset)
            return None
        head = self._src.read(offset, FRAME_HEADER_SIZE)
        tag, codec, reserved, count, stored, raw, first, payload_crc, header_crc = FRAME_HEADER.unpack(head)

        def fail(message: str) -> TraceFormatError:
            return TraceFormatError(message, offset)

        if zlib.crc32(head[:FRAME_HEADER_CRC_SPAN]) != header_crc:
            raise fail("frame header checksum mismatch")
        if not is_known_tag_shape(tag):
            raise fail(f"unknown frame tag {tag:#04x}")
        frame = FrameInfo(offset, tag, codec, count, stored, raw, first, payload_crc)
        if codec not in CODECS:
            raise fail(f"{frame.name} frame: unknown codec {codec}")
        if reserved:
            raise fail(f"{frame.name} frame: reserved field is {reserved:#x}, not 0")
        limit = RAW_LIMITS.get(tag, MAX_ANCILLARY_SIZE)
        if raw > limit:
            raise fail(f"{frame.name} frame declares {raw} bytes, the limit is {limit}")
        if codec == CODEC_STORED:
            if stored != raw:
                raise fail(f"{frame.name} frame: stored size {stored} != raw size {raw}")
        elif stored > max_stored_len(raw) or raw > LZ4_MAX_EXPANSION * stored:
            raise fail(f"{frame.name} frame: {stored} compressed bytes cannot hold {raw} bytes")
        if tag == TAG_CHUNK:
            if not 1 <= count <= raw // MIN_EVENT_SIZE:
                raise fail(f"chunk declares {count} events in {raw} bytes")
        elif tag == TAG_END:
            if count != 1:
                raise fail(f"END frame declares {count} events, not 1")
        elif tag in (TAG_HEADER, TAG_BLOB) and (count or first):
            raise fail(f"{frame.name} frame: count and first_icount must be 0")
        if stored > left - FRAME_HEADER_SIZE:
            return None
        return frame

    def _iter_chunks(self) -> Iterator[FrameInfo]:
        for offset in self._chunk_offsets:
            frame = self._frame_at(offset)
            if frame is None:
                raise TraceFormatError("the file shrank while it was being read", offset)
            yield frame

    def _check_crc(self, frame: FrameInfo) -> None:
        if self._src.crc32(frame.payload_offset, frame.stored_size) != frame.payload_crc:
            raise TraceFormatError(f"{frame.name} frame: payload checksum mismatch", frame.offset)

    def _inflate(self, frame: FrameInfo) -> bytes:
        """A frame's payload, CRC-checked and decompressed to exactly raw_size bytes."""
        payload = self._src.read(frame.payload_offset, frame.stored_size)
        if zlib.crc32(payload) != frame.payload_crc:
            raise TraceFormatError(f"{frame.name} frame: payload checksum mismatch", frame.offset)
        if frame.codec == CODEC_STORED:
            return payload
        try:
            if frame.codec == CODEC_LZ4_BLOCK:
                data = lz4.block.decompress(payload, uncompressed_size=frame.raw_size)
                complete = True
            else:
                assert frame.codec == CODEC_LZ4_FRAME
                decompressor = lz4.frame.LZ4FrameDecompressor()
                data = decompressor.decompress(payload, max_length=frame.raw_size)
                complete = decompressor.eof and not decompressor.unused_data
        # lz4 reports corrupt input with LZ4BlockError, RuntimeError or
        # ValueError depending on the API; all of them mean a bad payload.
        except Exception as exc:  # noqa: BLE001
            raise TraceFormatError(f"{frame.name} frame: corrupt lz4 data ({exc})", frame.offset) from None
        if not complete or len(data) != frame.raw_size:
            raise TraceFormatError(
                f"{frame.name} frame: lz4 data does not decompress to the declared {frame.raw_size} bytes",
                frame.offset,
            )
        return data

    def _read_end(self, frame: FrameInfo, first_icount: int) -> None:
        (end,) = list(
            decode_events(
                self._inflate(frame),
                first_icount=frame.first_icount,
                count=1,
                offset=frame.offset,
                where="END frame",
                allowed=_END_TAGS,
            )
        )
        assert isinstance(end, End)
        if end.icount < first_icount:
            raise TraceFormatError(
                f"END at icount {end.icount} precedes the last chunk at {first_icount}",
                frame.offset,
            )
        self.end = end
        self._end_offset = frame.offset

"""Writes ``.rvr`` recordings: the only code that produces the format.

The file is append-only (docs/FORMAT.md): the header and the blobs are
written and flushed by the constructor, events are encoded as they come into
an in-memory chunk, and each full chunk is compressed once and written as one
frame, then flushed to the kernel (and fsync'ed unless disabled). So at any
instant the file on disk is a prefix of the final file whose only possibly
partial frame is the last one; that is what lets a recorder killed with
SIGKILL leave a file the reader replays up to its last complete chunk.
``close(end)`` writes the pending chunk and the END frame; a file without
END reads as incomplete.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable
from importlib import metadata
from types import TracebackType
from typing import Any, BinaryIO, Self

import lz4.block
import lz4.frame

from replayvm import __version__ as REPLAYVM_VERSION
from replayvm.log.codec import encode_event
from replayvm.log.events import KINDS, End, Event
from replayvm.log.format import (
    CODEC_LZ4_BLOCK,
    CODEC_LZ4_FRAME,
    CODEC_STORED,
    FORMAT_VERSION,
    FRAME_HEADER,
    FRAME_HEADER_CRC_SPAN,
    MAGIC,
    MAX_ANCILLARY_SIZE,
    MAX_BLOB_SIZE,
    MAX_BLOBS,
    MAX_CHUNK_SIZE,
    MAX_EVENT_DATA,
    PREAMBLE,
    TAG_BLOB,
    TAG_CHUNK,
    TAG_END,
    TAG_HEADER,
    is_ancillary_tag,
)
from replayvm.log.header import check_blob_name, encode_header

DEFAULT_CHUNK_EVENTS = 4096
DEFAULT_CHUNK_BYTES = 64 << 10
# One record is at most a bytes field plus a few varints; keeping the byte
# threshold this far below MAX_CHUNK_SIZE means the event that crosses it
# still fits in a chunk the reader accepts.
MAX_CHUNK_BYTES = MAX_CHUNK_SIZE - MAX_EVENT_DATA - 64
MAX_CHUNK_EVENTS = 1 << 20

_CHUNK_KINDS = frozenset(cls for cls in KINDS.values() if cls is not End)


class RecordingWriter:
    """Appends a recording to ``target`` (a path, or a binary file object).

    ``config`` is the machine configuration as plain JSON values; ``blobs``
    are (name, contents) pairs embedded so the recording replays on a machine
    that has none of the original files. A path is opened (and truncated) by
    the writer and closed by it; a file object is written from its current
    position and left open.

    Events must come in non-decreasing icount order. A chunk is written when
    it holds ``chunk_events`` events or ``chunk_bytes`` encoded bytes, or on
    :meth:`flush`; a recorder that wants a bound on what a crash loses calls
    :meth:`flush` on its own cadence. ``fsync=False`` trades power-loss safety
    for speed (a process kill loses nothing already flushed either way).
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        config: dict[str, Any],
        blobs: Iterable[tuple[str, bytes]] = (),
        *,
        chunk_events: int = DEFAULT_CHUNK_EVENTS,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        fsync: bool = True,
        unicorn_version: str | None = None,
    ) -> None:
        if not 1 <= chunk_events <= MAX_CHUNK_EVENTS:
            raise ValueError(f"chunk_events must be in [1, {MAX_CHUNK_EVENTS}]")
        if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in [1, {MAX_CHUNK_BYTES}]")
        blob_list = _check_blobs(blobs)
        table = [(name, len(data), hashlib.sha256(data).hexdigest()) for name, data in blob_list]
        header = encode_header(REPLAYVM_VERSION, unicorn_version or _installed_unicorn_version(), config, table)

        self._chunk_events = chunk_events
        self._chunk_bytes = chunk_bytes
        self._fsync = fsync
        self._buf = bytearray()
        self._count = 0
        self._first_icount = 0
        self._last_icount = 0
        self._closed = False
        self._counts: dict[str, int] = {}
        self.bytes_written = 0
        self.chunks_written = 0
        self.events_written = 0

        if isinstance(target, str | os.PathLike):
            self._file: BinaryIO = open(target, "wb")  # noqa: SIM115 - held until close()
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self._fd = _fileno(self._file)
        try:
            self._write(PREAMBLE.pack(MAGIC, FORMAT_VERSION))
            self._write_frame(TAG_HEADER, CODEC_STORED, header, len(header))
            for _, data in blob_list:
                self._write_frame(TAG_BLOB, CODEC_LZ4_FRAME, lz4.frame.compress(data), len(data))
            self._sync()
        except BaseException:
            self._release()
            raise

    # -- public API ---------------------------------------------------------

    def append(self, event: Event) -> None:
        """Log one event. O(1) amortized: encoded now, compressed once per chunk."""
        if self._closed:
            raise ValueError("append() on a closed RecordingWriter")
        if type(event) not in _CHUNK_KINDS:
            raise TypeError(f"cannot append {type(event).__name__}; END goes to close()")
        icount = event.icount
        if icount < self._last_icount:
            raise ValueError(f"events must be in icount order: {icount} after {self._last_icount}")
        if not self._count:
            self._first_icount = icount
            previous = icount
        else:
            previous = self._last_icount
        encode_event(self._buf, event, previous)
        self._count += 1
        self._last_icount = icount
        self.events_written += 1
        self._counts[event.KIND] = self._counts.get(event.KIND, 0) + 1
        if self._count >= self._chunk_events or len(self._buf) >= self._chunk_bytes:
            self._write_chunk()
            self._sync()

    def flush(self) -> None:
        """Write the pending events as a chunk now and push the file to disk."""
        if self._closed:
            raise ValueError("flush() on a closed RecordingWriter")
        self._write_chunk()
        self._sync()

    def append_ancillary(self, tag: str, payload: bytes) -> None:
        """Write an ancillary frame (FORMAT.md §3.1): data old readers may skip,
        such as a bug report's note and expectations (tag ``r``)."""
        if self._closed:
            raise ValueError("append_ancillary() on a closed RecordingWriter")
        if len(tag) != 1 or not is_ancillary_tag(ord(tag)):
            raise ValueError(f"ancillary tags are a-z, not {tag!r}")
        if len(payload) > MAX_ANCILLARY_SIZE:
            raise ValueError("ancillary frame too large")
        self._write_chunk()
        self._write_frame(ord(tag), CODEC_STORED, payload, len(payload), 0, self._last_icount)

    def close(self, end: End) -> None:
        """Finish the recording: last chunk, END frame, flush, and close the file."""
        if self._closed:
            raise ValueError("close() on a closed RecordingWriter")
        if type(end) is not End:
            raise TypeError(f"close() needs an End event, not {type(end).__name__}")
        if end.icount < self._last_icount:
            raise ValueError(f"END at icount {end.icount} precedes the last event")
        try:
            self._write_chunk()
            payload = bytearray()
            encode_event(payload, end, end.icount)
            self._write_compressible(TAG_END, bytes(payload), count=1, first_icount=end.icount)
            self._sync()
        finally:
            self._release()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def event_counts(self) -> dict[str, int]:
        """Events appended so far, by kind name (END not included)."""
        return dict(self._counts)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leaving without close(end) keeps what was appended but writes no
        END: the file reads as incomplete, like a recorder that died."""
        if self._closed:
            return
        try:
            self._write_chunk()
            self._sync()
        finally:
            self._release()

    # -- frames ---------------------------------------------------------------

    def _write_chunk(self) -> None:
        if not self._count:
            return
        raw = bytes(self._buf)
        self._write_compressible(TAG_CHUNK, raw, count=self._count, first_icount=self._first_icount)
        self._buf.clear()
        self._count = 0
        self.chunks_written += 1

    def _write_compressible(self, tag: int, raw: bytes, *, count: int, first_icount: int) -> None:
        """Write ``raw`` lz4-block compressed, or stored when that is not smaller
        (entropy and network frames rarely compress)."""
        packed = lz4.block.compress(raw, store_size=False)
        if len(packed) < len(raw):
            self._write_frame(tag, CODEC_LZ4_BLOCK, packed, len(raw), count, first_icount)
        else:
            self._write_frame(tag, CODEC_STORED, raw, len(raw), count, first_icount)

    def _write_frame(
        self,
        tag: int,
        codec: int,
        payload: bytes,
        raw_len: int,
        count: int = 0,
        first_icount: int = 0,
    ) -> None:
        head = FRAME_HEADER.pack(tag, codec, 0, count, len(payload), raw_len, first_icount, zlib.crc32(payload), 0)
        crc = zlib.crc32(head[:FRAME_HEADER_CRC_SPAN])
        # A kill between or inside these writes leaves a frame cut by the end
        # of the file, which the reader treats as the truncated tail.
        self._write(head[:FRAME_HEADER_CRC_SPAN] + crc.to_bytes(4, "little"))
        self._write(payload)

    # -- file -----------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if written is None:  # a non-blocking raw file that would block
                raise BlockingIOError("recording target would block")
            view = view[written:]
        self.bytes_written += len(data)

    def _sync(self) -> None:
        self._file.flush()
        if self._fsync and self._fd is not None:
            os.fsync(self._fd)

    def _release(self) -> None:
        self._closed = True
        self._buf = bytearray()
        if self._owns_file:
            self._file.close()


def _check_blobs(blobs: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    result: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for name, contents in blobs:
        problem = check_blob_name(name)
        if problem:
            raise ValueError(problem)
        if name in seen:
            raise ValueError(f"blob name {name!r} given twice")
        seen.add(name)
        if not isinstance(contents, bytes | bytearray | memoryview):
            raise TypeError(f"blob {name!r} must be bytes, not {type(contents).__name__}")
        data = bytes(contents)
        if len(data) > MAX_BLOB_SIZE:
            raise ValueError(f"blob {name!r} is larger than {MAX_BLOB_SIZE} bytes")
        result.append((name, data))
    if len(result) > MAX_BLOBS:
        raise ValueError(f"{len(result)} blobs, the limit is {MAX_BLOBS}")
    return result


def _fileno(file: BinaryIO) -> int | None:
    try:
        return file.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _installed_unicorn_version() -> str:
    """The Unicorn package version, found without importing the engine."""
    try:
        return metadata.version("unicorn")
    except metadata.PackageNotFoundError:
        return "unknown"

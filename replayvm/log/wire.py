"""Wire primitives of event records: LEB128 varints and a bounds-checked cursor.

Varints are unsigned LEB128 (7 bits per byte, low group first, high bit =
"more"), at most 10 bytes, at most 64 bits, and canonical: a multi-byte
varint never ends in a zero byte. Canonical encodings make every value have
exactly one byte form, so a decoder can refuse anything a writer could not
have produced. Signed values are zigzag-mapped first (protobuf's sint64).

The :class:`Cursor` is what reads untrusted bytes: every read checks the
bytes left first and raises :class:`TraceFormatError` naming where it was,
so no IndexError or slicing surprise can escape.
"""

from __future__ import annotations

from typing import NoReturn

from replayvm.errors import TraceFormatError
from replayvm.log.format import I64_MAX, I64_MIN, U64_MAX

MAX_VARINT_LEN = 10


def encode_uvarint(out: bytearray, value: int) -> None:
    """Append ``value`` (0 <= value < 2**64) as a canonical LEB128 varint."""
    if value < 0 or value > U64_MAX:
        raise ValueError(f"varint out of range: {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def zigzag(value: int) -> int:
    """Map a signed 64-bit int to unsigned so small magnitudes stay short."""
    if value < I64_MIN or value > I64_MAX:
        raise ValueError(f"signed varint out of range: {value}")
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def encode_svarint(out: bytearray, value: int) -> None:
    """Append a signed 64-bit int as a zigzag varint."""
    encode_uvarint(out, zigzag(value))


class Cursor:
    """Reads primitives from an untrusted buffer, failing with a located error.

    ``where`` names the container (e.g. "chunk of 12 events") and ``offset``
    is its file offset; errors report both plus the position in the buffer,
    which for a compressed chunk is a position in the decompressed payload.
    """

    __slots__ = ("buf", "end", "offset", "pos", "where")

    def __init__(self, buf: bytes, offset: int, where: str) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.offset = offset
        self.where = where

    def fail(self, message: str) -> NoReturn:
        raise TraceFormatError(f"{self.where}, payload byte {self.pos}: {message}", self.offset)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def uvarint(self) -> int:
        buf, pos = self.buf, self.pos
        if pos >= self.end:
            self.fail("truncated varint")
        byte = buf[pos]
        if byte < 0x80:
            self.pos = pos + 1
            return byte
        value = byte & 0x7F
        shift = 7
        pos += 1
        while True:
            if pos >= self.end:
                self.fail("truncated varint")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift >= 7 * MAX_VARINT_LEN:
                self.fail(f"varint longer than {MAX_VARINT_LEN} bytes")
        if byte == 0:
            self.fail("non-canonical varint (trailing zero byte)")
        if value > U64_MAX:
            self.fail("varint exceeds 64 bits")
        self.pos = pos
        return value

    def uint(self, limit: int, what: str) -> int:
        """An unsigned varint that must not exceed ``limit``."""
        value = self.uvarint()
        if value > limit:
            self.fail(f"{what} {value} exceeds {limit}")
        return value

    def svarint(self) -> int:
        return unzigzag(self.uvarint())

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            self.fail(f"needs {n} bytes, only {self.end - self.pos} left")
        start = self.pos
        self.pos = start + n
        return bytes(self.buf[start : self.pos])

    def sized_bytes(self, limit: int, what: str) -> bytes:
        """A varint length (checked against ``limit`` and the bytes left) + data."""
        return self.take(self.uint(limit, f"{what} length"))

    def sized_str(self, limit: int, what: str) -> str:
        raw = self.sized_bytes(limit, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8")

"""Byte-layout constants of the ``.rvr`` recording container (docs/FORMAT.md).

Everything a reader must agree on with the writer lives here: the magic, the
format version, the frame header layout, frame tags and codecs, and the hard
limits. The writer refuses to produce anything the reader would reject, so
the limits are checked on both sides from these same numbers.
"""

from __future__ import annotations

import struct

# A PNG-style signature: the high-bit byte catches 7-bit transports, CR LF and
# the trailing LF catch newline translation, ^Z stops DOS ``type``.
MAGIC = b"\x89RVR\r\n\x1a\n"
FORMAT_VERSION = 2  # 2: the END digest covers RAM's non-zero 64 KiB chunks (docs/FORMAT.md §9)

PREAMBLE = struct.Struct("<8sH")  # magic, format version
PREAMBLE_SIZE = PREAMBLE.size  # 10

# Frame header, little-endian, 40 bytes:
#   tag u8, codec u8, reserved u16 (zero), count u32,
#   stored_len u64, raw_len u64, first_icount u64,
#   payload_crc u32 (CRC-32 of the stored payload),
#   header_crc u32 (CRC-32 of the 36 header bytes before it).
FRAME_HEADER = struct.Struct("<BBHIQQQII")
FRAME_HEADER_SIZE = FRAME_HEADER.size  # 40
FRAME_HEADER_CRC_SPAN = FRAME_HEADER_SIZE - 4

# Critical frame tags are upper-case ASCII letters: a reader must understand
# them. Lower-case letters are ancillary frames (PNG's rule): a reader that
# does not know one checks its CRCs and skips it.
TAG_HEADER = ord("H")
TAG_BLOB = ord("B")
TAG_CHUNK = ord("C")
TAG_END = ord("E")
CRITICAL_TAGS = frozenset({TAG_HEADER, TAG_BLOB, TAG_CHUNK, TAG_END})
FRAME_NAMES = {TAG_HEADER: "header", TAG_BLOB: "blob", TAG_CHUNK: "chunk", TAG_END: "END"}


def is_ancillary_tag(tag: int) -> bool:
    """True for a lower-case ASCII letter: a frame a reader may skip."""
    return 0x61 <= tag <= 0x7A


def is_known_tag_shape(tag: int) -> bool:
    """True if ``tag`` is a tag this format version can contain at all."""
    return tag in CRITICAL_TAGS or is_ancillary_tag(tag)


CODEC_STORED = 0
CODEC_LZ4_BLOCK = 1  # lz4 block, no size prefix: raw_len is in the frame header
CODEC_LZ4_FRAME = 2  # lz4 frame format (used for blobs)
CODECS = frozenset({CODEC_STORED, CODEC_LZ4_BLOCK, CODEC_LZ4_FRAME})

# LZ4 cannot expand more than ~255:1 (a match length grows by 255 per byte).
# A frame claiming a larger ratio is hostile; refusing it bounds the memory a
# decompression can take by a multiple of bytes actually present in the file.
LZ4_MAX_EXPANSION = 256


def max_stored_len(raw_len: int) -> int:
    """Largest stored size any codec can produce for ``raw_len`` raw bytes."""
    return raw_len + raw_len // 255 + 1024


# Hard limits. Each declared length in a file is checked against these (and
# against the bytes left in the file) before anything is allocated.
MAX_HEADER_SIZE = 1 << 20  # the JSON header, uncompressed
MAX_CONFIG_DEPTH = 16  # nesting of lists/objects in the header JSON
MAX_VERSION_LEN = 64  # "replayvm" / "unicorn" version strings
MAX_BLOBS = 64
MAX_BLOB_NAME_LEN = 64
MAX_BLOB_SIZE = 1 << 32  # 4 GiB uncompressed, per blob
MAX_CHUNK_SIZE = 8 << 20  # one event chunk, uncompressed
MAX_END_SIZE = 1 << 20  # the END frame, uncompressed
MAX_ANCILLARY_SIZE = 64 << 20  # an ancillary frame, uncompressed (never inflated)
MIN_EVENT_SIZE = 2  # tag + icount delta: bounds a chunk's event count by its size
MAX_EVENT_DATA = 1 << 20  # a bytes field of one event
MAX_REASON_LEN = 1024  # END reason, UTF-8 bytes
MAX_STATS = 4096  # END statistics entries
MAX_STAT_NAME_LEN = 128  # UTF-8 bytes
DIGEST_SIZES = (16, 32)

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

RAW_LIMITS = {
    TAG_HEADER: MAX_HEADER_SIZE,
    TAG_BLOB: MAX_BLOB_SIZE,
    TAG_CHUNK: MAX_CHUNK_SIZE,
    TAG_END: MAX_END_SIZE,
}

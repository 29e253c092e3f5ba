"""The recording header: who wrote the file, the machine config, the blob table.

The header is a UTF-8 JSON object (docs/FORMAT.md, "Header frame") because
it is small, read once, and worth being legible with ``strings``. JSON from a
file is untrusted: the reader parses it only after the size check, refuses
duplicate keys, NaN/Infinity, lone surrogates and nesting deeper than
:data:`MAX_CONFIG_DEPTH`, and validates every field's type. The writer
applies the same rules to what it is given, so whatever it writes reads back
equal.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from replayvm.errors import TraceFormatError
from replayvm.log.format import (
    I64_MIN,
    MAX_BLOB_NAME_LEN,
    MAX_BLOB_SIZE,
    MAX_BLOBS,
    MAX_CONFIG_DEPTH,
    MAX_HEADER_SIZE,
    MAX_VERSION_LEN,
    U64_MAX,
)

BLOB_NAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_BLOB_NAME_LEN - 1}}}", re.ASCII)
SHA256_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    """What the header says about the run: format and tool versions, machine config."""

    format_version: int
    replayvm_version: str
    unicorn_version: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One embedded file: its role name, uncompressed size and SHA-256 (hex).

    ``stored_size`` is its compressed size in the file and ``offset`` the
    file offset of its blob frame (for ``info`` and error messages).
    """

    name: str
    size: int
    sha256: str
    stored_size: int
    offset: int


def json_problem(value: object, depth: int = 0) -> str | None:
    """Why ``value`` is not a plain JSON value that round-trips exactly, or None.

    Plain means: None, bool, int in the 64-bit range, finite float, str
    encodable as UTF-8, list, and dict with str keys, nested at most
    :data:`MAX_CONFIG_DEPTH` deep. Tuples are refused because they would come
    back as lists.
    """
    if depth > MAX_CONFIG_DEPTH:
        return f"nested deeper than {MAX_CONFIG_DEPTH} levels"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if I64_MIN <= value <= U64_MAX else f"integer {value} out of 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"non-finite number {value}"
    if isinstance(value, str):
        return _str_problem(value)
    if isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"object key {key!r} is not a str"
            problem = _str_problem(key) or json_problem(item, depth + 1)
            if problem:
                return f"{key}: {problem}"
        return None
    return f"{type(value).__name__} is not a plain JSON value"


def _str_problem(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "string is not encodable as UTF-8"
    return None


def encode_header(
    replayvm_version: str,
    unicorn_version: str,
    config: dict[str, Any],
    blobs: list[tuple[str, int, str]],
) -> bytes:
    """The header JSON for a writer; raises ValueError/TypeError on bad input.

    ``blobs`` is (name, uncompressed size, sha256 hex) in file order. Keys are
    sorted so that equal inputs give byte-identical headers.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, not {type(config).__name__}")
    for what, version in (("replayvm", replayvm_version), ("unicorn", unicorn_version)):
        if not isinstance(version, str) or not 0 < len(version) <= MAX_VERSION_LEN:
            raise ValueError(f"{what} version must be a 1-{MAX_VERSION_LEN} character str")
    doc = {
        "replayvm": replayvm_version,
        "unicorn": unicorn_version,
        "config": config,
        "blobs": [{"name": n, "size": s, "sha256": h} for n, s, h in blobs],
    }
    # Checked on the whole document, as the reader does, so the depth limit
    # means the same on both sides.
    problem = json_problem(doc)
    if problem:
        raise ValueError(f"config is not plain JSON: {problem}")
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    if len(raw) > MAX_HEADER_SIZE:
        raise ValueError(f"header is {len(raw)} bytes, the limit is {MAX_HEADER_SIZE}")
    return raw


def check_blob_name(name: object) -> str | None:
    """Why ``name`` cannot be a blob name, or None."""
    if not isinstance(name, str) or not BLOB_NAME_RE.fullmatch(name):
        return (
            f"blob name {name!r} must be 1-{MAX_BLOB_NAME_LEN} characters of "
            "[A-Za-z0-9._-], starting with a letter or digit"
        )
    return None


def decode_header(raw: bytes, format_version: int, offset: int) -> tuple[RecordingHeader, list[tuple[str, int, str]]]:
    """Parse and validate header JSON read from the file at ``offset``.

    Returns the header and the blob table as (name, size, sha256 hex).
    Unknown top-level and blob-entry keys are ignored (FORMAT.md,
    compatibility); everything else malformed is a TraceFormatError.
    """

    def fail(message: str) -> TraceFormatError:
        return TraceFormatError(f"header: {message}", offset)

    if len(raw) > MAX_HEADER_SIZE:
        raise fail(f"{len(raw)} bytes, the limit is {MAX_HEADER_SIZE}")
    try:
        text = raw.decode("utf-8")
        doc = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError, duplicate
        # keys, NaN and integers beyond int_max_str_digits.
        raise fail(f"not valid JSON ({_one_line(exc)})") from None
    if not isinstance(doc, dict):
        raise fail("not a JSON object")
    problem = json_problem(doc)
    if problem:
        raise fail(problem)
    versions = []
    for key in ("replayvm", "unicorn"):
        value = doc.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_VERSION_LEN:
            raise fail(f'"{key}" must be a version string of 1-{MAX_VERSION_LEN} characters')
        versions.append(value)
    config = doc.get("config")
    if not isinstance(config, dict):
        raise fail('"config" must be a JSON object')
    table = doc.get("blobs")
    if not isinstance(table, list):
        raise fail('"blobs" must be a JSON array')
    if len(table) > MAX_BLOBS:
        raise fail(f"{len(table)} blobs, the limit is {MAX_BLOBS}")
    blobs: list[tuple[str, int, str]] = []
    seen: set[str] = set()
    for i, entry in enumerate(table):
        if not isinstance(entry, dict):
            raise fail(f"blob {i} is not a JSON object")
        name, size, digest = entry.get("name"), entry.get("size"), entry.get("sha256")
        problem = check_blob_name(name)
        if problem:
            raise fail(f"blob {i}: {problem}")
        if name in seen:
            raise fail(f"blob name {name!r} appears twice")
        seen.add(name)
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_BLOB_SIZE:
            raise fail(f"blob {name!r}: size must be an integer in [0, {MAX_BLOB_SIZE}]")
        if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
            raise fail(f"blob {name!r}: sha256 must be 64 lower-case hex digits")
        blobs.append((name, size, digest))
    header = RecordingHeader(format_version, versions[0], versions[1], config)
    return header, blobs


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate object key")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]

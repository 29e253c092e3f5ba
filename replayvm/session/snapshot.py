"""A machine snapshot as recording blobs: how `replayvm trim` starts mid-run.

A trimmed recording carries, instead of the history before its first icount,
the machine at that icount: ``snapshot`` (CPU context, devices, board and
replay position, as canonical JSON with bytes in hex) and ``ram`` (the
pages that differ from RAM right after boot, each a u32 page number
and 4 KiB). Both come from an
untrusted file, so a snapshot is accepted only if it has exactly the shape
of a freshly built machine's state (same keys, types and CPU context size).
"""

from __future__ import annotations

import json
import struct

from replayvm.engine.memory import PAGE_SIZE, GuestRam
from replayvm.errors import TraceFormatError

SNAPSHOT_BLOB = "snapshot"
RAM_BLOB = "ram"
_PAGE_ENTRY = struct.Struct("<I")
MAX_BYTES_FIELD = 1 << 20


def _encode(value: object) -> object:
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, dict):
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict):
        if set(value) == {"hex"} and isinstance(value["hex"], str) and len(value["hex"]) <= 2 * MAX_BYTES_FIELD:
            return bytes.fromhex(value["hex"])
        if set(value) == {"dict"} and isinstance(value["dict"], list):
            out = {}
            for pair in value["dict"]:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError("bad dict entry")
                key = _decode(pair[0])
                if not isinstance(key, (str, int)):
                    raise TypeError("bad dict key")
                out[key] = _decode(pair[1])
            return out
        raise ValueError("unknown object")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise ValueError("unexpected value")


def encode_snapshot(state: dict[str, object]) -> bytes:
    return json.dumps(_encode(state), separators=(",", ":")).encode()


def _same_shape(template: object, value: object, where: str, free_keys: bool = False) -> None:
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise TraceFormatError(f"snapshot {where}: expected a mapping")
        if not free_keys and set(template) != set(value):
            raise TraceFormatError(f"snapshot {where}: unexpected fields")
        for key, item in value.items():
            if free_keys:  # exit counters: any keys, integer values
                if not isinstance(key, (int, str)) or not isinstance(item, int) or isinstance(item, bool):
                    raise TraceFormatError(f"snapshot {where}: bad counter")
            elif key == "stats" and isinstance(item, dict):
                if set(item) != set(template[key]):  # type: ignore[call-overload, index]
                    raise TraceFormatError(f"snapshot {where}.stats: unexpected fields")
                for name, counters in item.items():
                    _same_shape({}, counters, f"{where}.stats.{name}", free_keys=True)
            else:
                _same_shape(template[key], item, f"{where}.{key}")
        return
    if isinstance(template, list):
        if not isinstance(value, list) or len(value) != len(template):
            raise TraceFormatError(f"snapshot {where}: expected a list of {len(template)}")
        for i, (t, v) in enumerate(zip(template, value)):
            _same_shape(t, v, f"{where}[{i}]")
        return
    if template is None:
        if value is not None and not isinstance(value, list):
            raise TraceFormatError(f"snapshot {where}: unexpected value")
        return
    if type(template) is not type(value):
        raise TraceFormatError(f"snapshot {where}: expected {type(template).__name__}")
    if isinstance(template, int) and not isinstance(template, bool) and not -(1 << 63) <= value < 1 << 64:  # type: ignore[operator]
        raise TraceFormatError(f"snapshot {where}: integer out of range")


def decode_snapshot(data: bytes, template: dict[str, object]) -> dict[str, object]:
    """Parse and check a snapshot against ``template`` (a fresh machine's state)."""
    try:
        state = _decode(json.loads(data))
    except (ValueError, TypeError, RecursionError):
        raise TraceFormatError("snapshot blob is not a valid snapshot") from None
    if not isinstance(state, dict):
        raise TraceFormatError("snapshot blob is not a mapping")
    _same_shape(template, state, "state")
    context = state["machine"]["vcpu"]["context"]  # type: ignore[index]
    if len(context) != len(template["machine"]["vcpu"]["context"]):  # type: ignore[index]
        raise TraceFormatError("snapshot CPU context has the wrong size")
    return state


def encode_ram(ram: GuestRam, pages: list[int]) -> bytes:
    """The given pages (byte offsets) of RAM: those that differ from RAM right
    after boot, which the replayer rebuilds from the kernel blob itself."""
    out = bytearray()
    view = ram.view
    for page in pages:
        out += _PAGE_ENTRY.pack(page // PAGE_SIZE)
        out += view[page : page + PAGE_SIZE]
    return bytes(out)


def load_ram(ram: GuestRam, data: bytes) -> None:
    """Apply a ``ram`` blob over RAM as it is right after boot."""
    step = _PAGE_ENTRY.size + PAGE_SIZE
    if len(data) % step:
        raise TraceFormatError("ram blob is not a whole number of pages")
    for offset in range(0, len(data), step):
        (page,) = _PAGE_ENTRY.unpack_from(data, offset)
        if (page + 1) * PAGE_SIZE > ram.size:
            raise TraceFormatError(f"ram blob page {page} is outside the machine's RAM")
        start = offset + _PAGE_ENTRY.size
        ram.view[page * PAGE_SIZE : (page + 1) * PAGE_SIZE] = data[start : start + PAGE_SIZE]

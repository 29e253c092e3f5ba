"""How values, memory and machine state read on the screen (gdb's habits).

Pure functions from data to text: no session, no I/O, so each one is
tested on its own. The commands put them together.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from replayvm.debugger.expr import CHAR, MASK64, CType, Value, wrap

RFLAGS_BITS = (
    (0, "CF"),
    (2, "PF"),
    (4, "AF"),
    (6, "ZF"),
    (7, "SF"),
    (8, "TF"),
    (9, "IF"),
    (10, "DF"),
    (11, "OF"),
    (14, "NT"),
    (16, "RF"),
    (17, "VM"),
    (18, "AC"),
    (19, "VIF"),
    (20, "VIP"),
    (21, "ID"),
)

EXCEPTION_NAMES = {
    0: "#DE",
    1: "#DB",
    2: "NMI",
    3: "#BP",
    4: "#OF",
    5: "#BR",
    6: "#UD",
    7: "#NM",
    8: "#DF",
    10: "#TS",
    11: "#NP",
    12: "#SS",
    13: "#GP",
    14: "#PF",
    16: "#MF",
    17: "#AC",
    18: "#MC",
    19: "#XM",
}

# x/FMT: size letters, and how many items of each size a line holds.
SIZES = {"b": 1, "h": 2, "w": 4, "g": 8}
PER_LINE = {1: 8, 2: 8, 4: 4, 8: 2}
INT_FORMATS = frozenset("xduotacfz")
FORMATS = INT_FORMATS | frozenset("si")
MAX_STRING = 200  # characters of an x/s string, like gdb's default `print elements`

Labeler = Callable[[int], str]  # address -> "<sym+off>" or ""


def addr16(address: int) -> str:
    """An address as gdb writes it in stop lines and backtraces."""
    return f"0x{address & MASK64:016x}"


def with_label(address: int, label: Labeler) -> str:
    text = label(address)
    return f"{address & MASK64:#x} {text}" if text else f"{address & MASK64:#x}"


def char_text(value: int) -> str:
    """``65 'A'``, ``10 '\\n'``, ``200 '\\310'``: a char as gdb prints it."""
    byte = value & 0xFF
    escapes = {0: "\\000", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 27: "\\033"}
    if byte in escapes:
        shown = escapes[byte]
    elif byte == 0x27:
        shown = "\\'"
    elif byte == 0x5C:
        shown = "\\\\"
    elif 0x20 <= byte < 0x7F:
        shown = chr(byte)
    else:
        shown = f"\\{byte:03o}"
    return f"{wrap(value, CHAR)} '{shown}'"


def c_string(data: bytes, truncated: bool = False) -> str:
    out = []
    for byte in data:
        if byte == 0x22:
            out.append('\\"')
        elif byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append({10: "\\n", 13: "\\r", 9: "\\t", 27: "\\033"}.get(byte, f"\\{byte:03o}"))
    return '"' + "".join(out) + '"' + ("..." if truncated else "")


def integer_text(value: int, fmt: str, size: int, signed: bool, label: Labeler) -> str:
    """One integer in a print/x format letter, ``size`` bytes wide."""
    bits = 8 * size
    raw = value & ((1 << bits) - 1)
    if fmt == "x":
        return f"{raw:#x}"
    if fmt == "z":
        return f"0x{raw:0{2 * size}x}"
    if fmt == "d":
        return str(wrap(raw, CType("", size, True)))
    if fmt == "u":
        return str(raw)
    if fmt == "o":
        return f"0{raw:o}" if raw else "0"
    if fmt == "t":
        return f"{raw:b}"
    if fmt == "c":
        return char_text(raw)
    if fmt == "a":
        return with_label(raw, label)
    if fmt == "f" and size in (4, 8):
        return repr(struct.unpack("<f" if size == 4 else "<d", raw.to_bytes(size, "little"))[0])
    return str(wrap(raw, CType("", size, signed)))


def value_text(value: Value, fmt: str | None, label: Labeler) -> str:
    """A ``print`` result: addresses with their symbol, chars with their glyph."""
    size = value.ctype.size or 8
    if fmt is None:
        if value.address:
            prefix = f"({value.pointee.name} *) " if value.pointee is not None else ""
            return prefix + with_label(value.value, label)
        if value.ctype == CHAR:
            return char_text(value.value)
        return str(value.value)
    if fmt in ("s", "i"):
        fmt = "x"
    return integer_text(value.value, fmt, size, value.ctype.signed, label)


def memory_lines(data: bytes, address: int, fmt: str, size: int, label: Labeler, *, signed: bool = False) -> list[str]:
    """``x`` output for integer formats: ``0xADDR <sym+off>:`` then the items."""
    per_line = PER_LINE[size]
    lines = []
    width = 2 + 2 * size if fmt == "x" else 0  # x/x pads to the item size, like gdb
    for start in range(0, len(data), size * per_line):
        here = address + start
        head = with_label(here, label)
        items = []
        for off in range(start, min(len(data), start + size * per_line), size):
            item = int.from_bytes(data[off : off + size], "little")
            text = integer_text(item, fmt, size, signed or fmt == "d", label)
            if width:
                text = f"0x{item:0{2 * size}x}"
            items.append(text)
        lines.append(f"{head}:\t" + "\t".join(items))
    return lines


def bytes_text(data: bytes, limit: int = 32) -> str:
    shown = ", ".join(f"{b:#04x}" for b in data[:limit])
    return "{" + shown + (", ..." if len(data) > limit else "") + "}"


def watch_value(data: bytes | None, ctype: CType | None) -> str:
    """A watched location's contents: an integer up to 8 bytes, else bytes."""
    if data is None:
        return "<unreadable>"
    if len(data) in (1, 2, 4, 8):
        signed = ctype.signed if ctype is not None else False
        return str(int.from_bytes(data, "little", signed=signed))
    return bytes_text(data)


def size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"


def state_value(value: object) -> str:
    """Device state (plain data) compactly: ints in hex past 9, long bytes cut."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:#x}" if value > 9 else str(value)
    if isinstance(value, (bytes, bytearray)):
        if not any(value):
            return f"<{len(value)} zero bytes>" if len(value) > 8 else "b''" if not value else value.hex()
        head = bytes(value[:16]).hex(" ")
        return head if len(value) <= 16 else f"<{len(value)} bytes: {head} ...>"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(state_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={state_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def wrap_fields(fields: list[str], width: int = 100, indent: str = "    ") -> list[str]:
    lines: list[str] = []
    current = indent
    for f in fields:
        if len(current) + len(f) + 1 > width and current.strip():
            lines.append(current.rstrip())
            current = indent
        current += f + " "
    if current.strip():
        lines.append(current.rstrip())
    return lines


def table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    """Left-aligned columns, the last one free."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def register_line(name: str, value: int, natural: str) -> str:
    """``info registers``: name, hex, natural value, in gdb's columns."""
    return f"{name:<15}{value & MASK64:<#19x}{natural}"


CR0_BITS = ((0, "PE"), (1, "MP"), (2, "EM"), (3, "TS"), (4, "ET"), (5, "NE"), (16, "WP"), (18, "AM"), (29, "NW"))
CR0_BITS += ((30, "CD"), (31, "PG"))
CR4_BITS = (
    (0, "VME"),
    (1, "PVI"),
    (2, "TSD"),
    (3, "DE"),
    (4, "PSE"),
    (5, "PAE"),
    (6, "MCE"),
    (7, "PGE"),
    (8, "PCE"),
    (9, "OSFXSR"),
    (10, "OSXMMEXCPT"),
    (11, "UMIP"),
    (12, "LA57"),
    (16, "FSGSBASE"),
    (17, "PCIDE"),
    (18, "OSXSAVE"),
    (20, "SMEP"),
    (21, "SMAP"),
    (22, "PKE"),
)
EFER_BITS = ((0, "SCE"), (8, "LME"), (10, "LMA"), (11, "NXE"))
CONTROL_BITS = {"cr0": CR0_BITS, "cr4": CR4_BITS, "efer": EFER_BITS, "rflags": RFLAGS_BITS}


def bits_text(value: int, bits: tuple[tuple[int, str], ...]) -> str:
    """``[ PG PE ]``: the named bits that are set, as gdb shows flags."""
    names = [name for bit, name in bits if value >> bit & 1]
    return "[ " + " ".join(names) + " ]" if names else "[ ]"

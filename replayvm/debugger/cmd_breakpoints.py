"""Breakpoints (with conditions) and watchpoints.

Locations are gdb's: ``*EXPR`` is an address, a symbol or ``symbol+off``
names code, ``FILE:LINE`` and ``LINE`` need DWARF. ``if EXPR`` makes a
condition that is compiled once and evaluated against the live registers
and memory each time the breakpoint is reached. A watchpoint takes an
address expression (``ticks``, ``0x142648``, ``*(uint32_t *)$rdi``) and an
optional ``,LEN``; its default length is the symbol's size or the cast's
type, else 8 bytes.
"""

from __future__ import annotations

import argparse
import re

from replayvm.debugger.commands import CommandError, command, parser
from replayvm.debugger.debugger import WATCH_TITLES, Debugger, WatchInfo
from replayvm.debugger.expr import CType, Deref, ExprError, Sym, parse
from replayvm.debugger.format import addr16

_CONDITION = re.compile(r"^(?P<location>.*?)(?:^|\s+)if(?:\s+(?P<condition>.*)|\s*$)", re.DOTALL)
_LINE = re.compile(r"(?:(?P<file>[^:\s*]+):)?(?P<line>[0-9]+)")
MAX_WATCH = 1 << 20


def resolve_location(dbg: Debugger, spec: str) -> int:
    spec = spec.strip()
    if not spec:
        return dbg.session.registers()["rip"]
    if spec.startswith("*"):
        return dbg.address(spec[1:])
    m = _LINE.fullmatch(spec)
    if m is not None:
        if not dbg.lines:
            hint = "" if m["file"] else f'; use "break *{spec}" for an address'
            raise CommandError(f"No line number information available{hint}.")
        file = m["file"]
        if file is None:
            here = dbg.lines.find(dbg.session.registers()["rip"])
            if here is None:
                raise CommandError("No default source file: use FILE:LINE.")
            file = here.file
        found = dbg.lines.address_of(file, int(m["line"]))
        if found is None:
            raise CommandError(f'No line {m["line"]} in file "{file}".')
        return found.address
    try:
        return dbg.address(spec)
    except ExprError as e:
        if e.symbol is not None:
            raise CommandError(f'Function "{e.symbol}" not defined.') from None
        raise


def _split_condition(text: str) -> tuple[str, str | None]:
    m = _CONDITION.match(text)
    if m is None:
        return text, None
    condition = (m["condition"] or "").strip()
    if not condition:
        raise CommandError("Argument required (boolean expression).")
    return m["location"], condition


def _set_breakpoint(dbg: Debugger, text: str | None, *, temporary: bool) -> None:
    location, condition_text = _split_condition(text or "")
    address = resolve_location(dbg, location)
    condition = dbg.condition(condition_text) if condition_text is not None else None
    bp = dbg.session.add_breakpoint(
        address, temporary=temporary, condition=condition, condition_text=condition_text or ""
    )
    if condition is not None:
        condition.number = bp.number
    if temporary:
        dbg.temporaries.add(bp.number)
    label = dbg.label(address)
    text = f"{'Temporary breakpoint' if temporary else 'Breakpoint'} {bp.number} at {address:#x}"
    text += f" {label}" if label else ""
    info = dbg.lines.find(address)
    if info is not None:
        text += f": file {info.file}, line {info.line}."
    dbg.console.line(text)


_p = parser(
    "break",
    "Set a breakpoint at LOCATION (default: the current instruction), optionally with a condition.\n"
    "LOCATION: *ADDRESS-EXPRESSION, SYMBOL, SYMBOL+OFFSET, or (with line information) FILE:LINE or LINE.\n"
    "`break LOCATION if EXPR` stops only where EXPR is non-zero, e.g. `break kprintf if $rdi == 0x103000`.",
)
_p.add_argument("location", nargs="?", metavar="LOCATION [if EXPR]")


@command("break", aliases=("b", "br"), parser=_p, category="breakpoints", raw=True)
def break_(dbg: Debugger, args: argparse.Namespace) -> None:
    _set_breakpoint(dbg, args.location, temporary=False)


_p = parser("tbreak", "Set a temporary breakpoint: deleted when it is first hit. Arguments as for `break`.")
_p.add_argument("location", nargs="?", metavar="LOCATION [if EXPR]")


@command("tbreak", parser=_p, category="breakpoints", raw=True)
def tbreak(dbg: Debugger, args: argparse.Namespace) -> None:
    _set_breakpoint(dbg, args.location, temporary=True)


_p = parser("delete", "Delete breakpoints and watchpoints by number; all of them without arguments.")
_p.add_argument("numbers", nargs="*", metavar="N")


@command("delete", aliases=("d",), parser=_p, category="breakpoints")
def delete(dbg: Debugger, args: argparse.Namespace) -> None:
    session = dbg.session
    numbers: list[int] = []
    for word in args.numbers:
        if word == "breakpoints":
            continue
        try:
            numbers.append(int(word, 0))
        except ValueError:
            raise CommandError(f'Arguments must be breakpoint numbers, not "{word}".') from None
    if not numbers:
        numbers = [n for n, bp in session.breakpoints.items() if not bp.internal] + list(session.watchpoints)
    for n in numbers:
        session.delete(n)
        dbg.temporaries.discard(n)
        dbg.watch_info.pop(n, None)


def _watch_target(dbg: Debugger, text: str) -> tuple[int, int, CType | None]:
    """(address, default length, value type) of a watch expression."""
    tree = parse(text)
    if isinstance(tree, Deref):
        pointer = dbg.value_of(tree.operand)
        ctype = pointer.pointee
        return pointer.unsigned, (ctype.size if ctype is not None and ctype.size else 8), ctype
    if isinstance(tree, Sym):
        sym = dbg.symbols.lookup(tree.name)
        if sym is not None:
            return sym.address, (sym.size if 0 < sym.size <= MAX_WATCH else 8), None
    return dbg.value_of(tree).unsigned, 8, None


_PHYSICAL_FLAGS = ("-p", "-physical")


def _set_watchpoint(dbg: Debugger, text: str | None, kind: str) -> None:
    text = (text or "").strip()
    first, _, rest = text.partition(" ")
    physical = first in _PHYSICAL_FLAGS
    if physical:
        text = rest.strip()
    if not text:
        raise CommandError("Argument required (address expression to watch).")
    expression, length_text = text, None
    if "," in text:
        expression, length_text = (part.strip() for part in text.rsplit(",", 1))
    address, length, ctype = _watch_target(dbg, expression)
    if length_text is not None:
        length = dbg.count(length_text, what="length")
        ctype = None if length != (ctype.size if ctype else 0) else ctype
    if not 1 <= length <= MAX_WATCH:
        raise CommandError(f"A watchpoint covers 1 byte to {MAX_WATCH} bytes, not {length}.")
    wp = dbg.session.add_watchpoint(address, length, kind, physical=physical)
    label = f"physical {expression}" if physical else expression
    dbg.watch_info[wp.number] = WatchInfo(label, ctype)
    dbg.console.line(f"{WATCH_TITLES[kind]} {wp.number}: {label}")


_WATCH_HELP = (
    "ADDR is an address expression (a symbol, a number, *(uint32_t *)$rdi); LEN defaults to 8 bytes.\n"
    "-p ADDR[,LEN] watches guest-physical memory: the CPU's accesses to it through any mapping\n"
    "(gva2gpa ADDR gives the physical address of a virtual one; xp examines physical memory)."
)

_p = parser("watch", f"Stop after an instruction writes to ADDR[,LEN].\n{_WATCH_HELP}")
_p.add_argument("target", nargs="?", metavar="[-p] ADDR[,LEN]")


@command("watch", parser=_p, category="breakpoints", raw=True)
def watch(dbg: Debugger, args: argparse.Namespace) -> None:
    _set_watchpoint(dbg, args.target, "write")


_p = parser("rwatch", f"Stop after an instruction reads ADDR[,LEN].\n{_WATCH_HELP}")
_p.add_argument("target", nargs="?", metavar="[-p] ADDR[,LEN]")


@command("rwatch", parser=_p, category="breakpoints", raw=True)
def rwatch(dbg: Debugger, args: argparse.Namespace) -> None:
    _set_watchpoint(dbg, args.target, "read")


_p = parser("awatch", f"Stop after an instruction reads or writes ADDR[,LEN].\n{_WATCH_HELP}")
_p.add_argument("target", nargs="?", metavar="[-p] ADDR[,LEN]")


@command("awatch", parser=_p, category="breakpoints", raw=True)
def awatch(dbg: Debugger, args: argparse.Namespace) -> None:
    _set_watchpoint(dbg, args.target, "access")


_WATCH_TYPES = {"write": "hw watchpoint", "read": "read watchpoint", "access": "acc watchpoint"}


def breakpoint_table(dbg: Debugger) -> list[str]:
    """``info breakpoints``, in gdb's columns."""
    session = dbg.session
    rows: list[tuple[int, list[str]]] = []
    for n, bp in session.breakpoints.items():
        if bp.internal:
            continue
        disp = "del" if bp.temporary else "keep"
        kind = "breakpoint"
        lines = [f"{n:<7} {kind:<15} {disp:<4} y   {addr16(bp.address)} {dbg.label(bp.address)}".rstrip()]
        if bp.condition_text:
            lines.append(f"\tstop only if {bp.condition_text}")
        if bp.hits:
            lines.append(f"\tbreakpoint already hit {bp.hits} time{'s' if bp.hits != 1 else ''}")
        rows.append((n, lines))
    for n, wp in session.watchpoints.items():
        info = dbg.watch_info.get(n)
        what = f"{info.text if info else f'*{wp.address:#x}'} ({wp.length} bytes at {wp.address:#x})"
        lines = [f"{n:<7} {_WATCH_TYPES[wp.kind]:<15} keep y   {'':<18} {what}"]
        if wp.hits:
            lines.append(f"\tbreakpoint already hit {wp.hits} time{'s' if wp.hits != 1 else ''}")
        rows.append((n, lines))
    if not rows:
        return ["No breakpoints or watchpoints."]
    out = ["Num     Type            Disp Enb Address            What"]
    for _, lines in sorted(rows):
        out.extend(lines)
    return out

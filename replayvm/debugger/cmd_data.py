"""Looking at and changing the machine: print, x, set, disassemble, bt, list."""

from __future__ import annotations

import argparse
import re

from replayvm.debugger.cmd_breakpoints import resolve_location
from replayvm.debugger.commands import CommandError, command, parser
from replayvm.debugger.debugger import Debugger
from replayvm.debugger.expr import VOID, Deref, ExprError, Reg, Sym, Value, parse_assignment
from replayvm.debugger.format import (
    FORMATS,
    INT_FORMATS,
    MAX_STRING,
    SIZES,
    addr16,
    c_string,
    memory_lines,
    value_text,
    with_label,
)
from replayvm.debugger.frames import MAX_FRAMES, backtrace

MAX_ITEMS = 10_000  # x/N and disassemble counts
MAX_FUNCTION_BYTES = 64 << 10
DEFAULT_DISASSEMBLE = 16
LIST_LINES = 10
IGNORED_SETTINGS = frozenset({"pagination", "confirm", "height", "width", "listsize"})


# -- print ------------------------------------------------------------------------------------

_p = parser(
    "print",
    "Evaluate EXPR and print its value, as $N in the value history.\n"
    "EXPR: numbers, $registers ($rax, $eax, $al, $pc ...), symbols (their address), $N history,\n"
    "C operators (+ - * / % << >> & | ^ ~ ! && || == != < <= > >=), *ADDR (8 bytes), *(uint32_t *)ADDR.\n"
    "/FMT: one of x d u o t c a z (hex, signed, unsigned, octal, binary, char, address, zero-padded hex).",
    usage="print[/FMT] [EXPR]",
)
_p.add_argument("expression", nargs="?", metavar="EXPR")


def _print_format(fmt: str | None) -> str | None:
    if fmt is None or fmt == "":
        return None
    if len(fmt) != 1 or fmt not in INT_FORMATS:
        if fmt and all(c in SIZES for c in fmt):
            raise CommandError('Size letters are meaningless in "print" command.')
        raise CommandError(f'Undefined output format "{fmt}".')
    return fmt


@command("print", aliases=("p",), parser=_p, category="data", raw=True, takes_format=True)
def print_(dbg: Debugger, args: argparse.Namespace) -> None:
    fmt = _print_format(args.format)
    if args.expression is None:
        if not dbg.history:
            raise CommandError("History is empty.")
        value = dbg.history[-1]
    else:
        value = dbg.evaluate(args.expression)
    dbg.history.append(value)
    dbg.console.line(f"${len(dbg.history)} = {value_text(value, fmt, dbg.label)}")


# -- x ----------------------------------------------------------------------------------------

_X_FORMAT = re.compile(r"(?P<count>[0-9]*)(?P<letters>[a-z]*)")

_p = parser(
    "x",
    "Examine memory: x/NFU ADDR, as in gdb.\n"
    "N: how many units; F: x d u o t a c f z (numbers), s (C strings), i (instructions);\n"
    "U: b (1 byte), h (2), w (4), g (8). Defaults: the last format, x and w at first.\n"
    "Without ADDR, continues after what the previous x showed.",
    usage="x[/NFU] [ADDR]",
)
_p.add_argument("address", nargs="?", metavar="ADDR")


def _x_format(dbg: Debugger, text: str | None) -> tuple[int, str, int]:
    state = dbg.examine
    m = _X_FORMAT.fullmatch(text or "")
    if m is None:
        raise CommandError(f'Invalid number "{text}".')
    count = int(m["count"]) if m["count"] else 1
    fmt, size = state.fmt, None
    for letter in m["letters"]:
        if letter in SIZES:
            size = SIZES[letter]
        elif letter in FORMATS:
            fmt = letter
        else:
            raise CommandError(f'Undefined output format "{letter}".')
    if count > MAX_ITEMS:
        raise CommandError(f"x: at most {MAX_ITEMS} units at a time.")
    if fmt == "a":
        size = 8
    elif size is None:
        size = 1 if fmt in ("c", "s") else state.size
    state.fmt = fmt
    if fmt not in ("c", "s", "i"):
        state.size = size
    return count, fmt, size


def _read_prefix(dbg: Debugger, address: int, length: int) -> bytes:
    """The readable part of ``length`` bytes at ``address``; an error if none is."""
    data = dbg.read_code(address, length)
    if not data:
        dbg.session.read_memory(address, 1)  # raises the one-line "Cannot access memory"
    return data


@command("x", parser=_p, category="data", raw=True, takes_format=True)
def examine(dbg: Debugger, args: argparse.Namespace) -> None:
    count, fmt, size = _x_format(dbg, args.format)
    if args.address is not None:
        address = dbg.address(args.address)
    elif dbg.examine.next_address is not None:
        address = dbg.examine.next_address
    else:
        raise CommandError("Argument required (starting display address).")
    out = dbg.console
    if fmt == "i":
        rip = dbg.session.registers()["rip"]
        insns = dbg.instructions(address, count)
        if not insns:
            dbg.session.read_memory(address, 1)
        for insn in insns:
            out.line(dbg.instruction_line(insn, current=insn.address == rip))
        dbg.examine.next_address = insns[-1].address + insns[-1].size if insns else address
        return
    if fmt == "s":
        for _ in range(count):
            data = _read_prefix(dbg, address, MAX_STRING + 1)
            end = data.find(b"\0")
            text = data if end < 0 else data[:end]
            truncated = end < 0 and len(data) > MAX_STRING
            out.line(
                f"{with_label(address, lambda a: dbg.label(a, code=False))}:\t{c_string(text[:MAX_STRING], truncated)}"
            )
            address += len(text) + (1 if end >= 0 else 0)
        dbg.examine.next_address = address
        return
    data = dbg.session.read_memory(address, count * size)
    for line in memory_lines(data, address, fmt, size, lambda a: dbg.label(a, code=False)):
        out.line(line)
    dbg.examine.next_address = address + count * size


# -- xp, gva2gpa: physical memory (QEMU monitor names) --------------------------------------------

_p = parser(
    "xp",
    "Examine guest-physical memory: xp/NFU PADDR, as x (numeric formats and c), as QEMU's monitor does.",
    usage="xp[/NFU] PADDR",
)
_p.add_argument("address", nargs="?", metavar="PADDR")


@command("xp", parser=_p, category="data", raw=True, takes_format=True)
def examine_physical(dbg: Debugger, args: argparse.Namespace) -> None:
    if args.address is None:
        raise CommandError("Argument required (starting physical address).")
    count, fmt, size = _x_format(dbg, args.format)
    if fmt in ("s", "i"):
        raise CommandError(f"xp shows numbers and characters, not format '{fmt}' (use x with a virtual address).")
    address = dbg.address(args.address)
    data = dbg.session.read_memory(address, count * size, physical=True)
    for line in memory_lines(data, address, fmt, size, lambda a: ""):  # no symbols: physical
        dbg.console.line(line)


_p = parser("gva2gpa", "The guest-physical address a virtual address maps to now (through CR3).")
_p.add_argument("address", nargs="?", metavar="ADDR")


@command("gva2gpa", parser=_p, category="data", raw=True)
def gva2gpa(dbg: Debugger, args: argparse.Namespace) -> None:
    if args.address is None:
        raise CommandError("Argument required (a virtual address).")
    address = dbg.address(args.address)
    dbg.console.line(f"gpa: {dbg.session.translate(address):#x}")


# -- set --------------------------------------------------------------------------------------

_p = parser(
    "set",
    "Change a register or memory: a diversion from the recording until the next seek.\n"
    "set $REG = EXPR | set *ADDR = EXPR (8 bytes) | set *(uint32_t *)ADDR = EXPR | set SYMBOL = EXPR\n"
    "set memory ADDR VALUE (8 bytes) | set var LHS = EXPR",
)
_p.add_argument("assignment", nargs="?", metavar="LHS = EXPR")


@command("set", parser=_p, category="data", raw=True)
def set_(dbg: Debugger, args: argparse.Namespace) -> None:
    text = (args.assignment or "").strip()
    first, _, rest = text.partition(" ")
    if not text:
        raise CommandError("Argument required (an assignment: $REG = EXPR or *ADDR = EXPR).")
    if first in IGNORED_SETTINGS:
        return  # gdb settings scripts use; nothing to do here
    if first == "var":
        text = rest
    elif first == "memory":
        parts = rest.rsplit(None, 1)
        if len(parts) != 2:
            raise CommandError("Usage: set memory ADDR VALUE")
        dbg.context.write_memory(dbg.address(parts[0]), dbg.evaluate(parts[1]).value, 8)
        return
    lhs, rhs = parse_assignment(text)
    value = dbg.value_of(rhs)
    _assign(dbg, lhs, value)


def _assign(dbg: Debugger, lhs: object, value: Value) -> None:
    ctx = dbg.context
    if isinstance(lhs, Reg):
        ctx.write_register(lhs.name, value.value)
    elif isinstance(lhs, Deref):
        pointer = dbg.value_of(lhs.operand)
        ctype = pointer.pointee
        if ctype is VOID:
            raise ExprError("Attempt to take contents of a non-pointer value.")
        ctx.write_memory(pointer.unsigned, value.value, ctype.size if ctype is not None else 8)
    elif isinstance(lhs, Sym):
        sym = dbg.symbols.lookup(lhs.name)
        if sym is None:
            raise ExprError(f'No symbol "{lhs.name}" in current context.', symbol=lhs.name)
        if sym.size not in (1, 2, 4, 8):
            raise CommandError(f'"{lhs.name}" is {sym.size} bytes: assign through *(TYPE *){lhs.name} instead.')
        ctx.write_memory(sym.address, value.value, sym.size)
    else:
        raise CommandError("Left operand of assignment is not an lvalue.")


# -- disassemble ------------------------------------------------------------------------------

_p = parser(
    "disassemble",
    "Disassemble the function around ADDR (default: here), or COUNT instructions from ADDR.\n"
    "ADDR is an expression (kprintf, $pc, 0x101780).",
)
_p.add_argument("target", nargs="?", metavar="[ADDR [,COUNT]]")


@command("disassemble", parser=_p, category="stack", raw=True)
def disassemble(dbg: Debugger, args: argparse.Namespace) -> None:
    rip = dbg.session.registers()["rip"]
    text = (args.target or "").strip()
    count: int | None = None
    if "," in text:
        text, count_text = (part.strip() for part in text.rsplit(",", 1))
        count = dbg.count(count_text)
        if count > MAX_ITEMS:
            raise CommandError(f"disassemble: at most {MAX_ITEMS} instructions at a time.")
    address = dbg.address(text) if text else rip
    func = dbg.symbols.function_at(address)
    out = dbg.console
    if count is None and func is not None and 0 < func.size <= MAX_FUNCTION_BYTES:
        out.line(f"Dump of assembler code for function {func.name}:")
        insns = [i for i in dbg.instructions(func.address, func.size) if i.address < func.address + func.size]
    else:
        count = DEFAULT_DISASSEMBLE if count is None else count
        insns = dbg.instructions(address, count)
        if not insns:
            dbg.session.read_memory(address, 1)
        end = insns[-1].address + insns[-1].size if insns else address
        out.line(f"Dump of assembler code from {address:#x} to {end:#x}:")
    for insn in insns:
        label = dbg.label(insn.address)
        where = f"{addr16(insn.address)}" + (f" {label}" if label else "")
        out.line(f"{'=> ' if insn.address == rip else '   '}{where}:\t{insn.text}")
    out.line("End of assembler dump.")


# -- backtrace --------------------------------------------------------------------------------

_p = parser(
    "backtrace",
    "Print the call stack, innermost first, by the frame-pointer (RBP) chain; at most N frames.",
)
_p.add_argument("limit", nargs="?", metavar="N")


@command("backtrace", aliases=("bt", "where"), parser=_p, category="stack")
def backtrace_(dbg: Debugger, args: argparse.Namespace) -> None:
    limit = dbg.count(args.limit, MAX_FRAMES, what="frame count") if args.limit else MAX_FRAMES
    trace = backtrace(dbg.session, dbg.symbols, limit=max(1, limit))
    for frame in trace.frames:
        dbg.console.line(f"#{frame.level:<2} {dbg.location(frame.pc, caller=frame.level > 0)}")
    if trace.stopped:
        dbg.console.line(trace.stopped)


# -- list -------------------------------------------------------------------------------------

_p = parser(
    "list",
    "List source lines around LOCATION (default: the current line, then onwards).\n"
    "Needs DWARF line information in the kernel image (build it with -g).\n"
    "LOCATION: FUNCTION, *ADDR, FILE:LINE or LINE.",
)
_p.add_argument("location", nargs="?", metavar="LOCATION")


def _list_center(dbg: Debugger, spec: str | None) -> tuple[str, int]:
    rip = dbg.session.registers()["rip"]
    if not spec:
        if dbg.list_next is not None:
            return dbg.list_next[0], dbg.list_next[1] + LIST_LINES // 2  # the next ten lines
        address = rip
    else:
        m = re.fullmatch(r"(?:(?P<file>[^:\s*]+):)?(?P<line>[0-9]+)", spec.strip())
        if m is not None and dbg.lines:
            file = m["file"] or (dbg.list_next[0] if dbg.list_next else None)
            if file is None:
                here = dbg.lines.find(rip)
                file = here.file if here is not None else None
            if file is None:
                raise CommandError("No default source file: use FILE:LINE.")
            found = dbg.lines.address_of(file, 1)
            return (found.file if found is not None else file), int(m["line"])
        address = resolve_location(dbg, spec)
    info = dbg.lines.find(address)
    if info is None:
        label = dbg.label(address)
        raise CommandError(
            f"No line number information available for address {address:#x}" + (f" {label}" if label else "")
        )
    return info.file, info.line


@command("list", aliases=("l",), parser=_p, category="stack", raw=True)
def list_(dbg: Debugger, args: argparse.Namespace) -> None:
    if not dbg.lines:
        raise CommandError(f"No line number information available ({dbg.lines.problem}).")
    file, center = _list_center(dbg, args.location)
    first = max(1, center - LIST_LINES // 2)
    text = dbg.sources.lines(file)
    if text is None:
        dbg.list_next = (file, first + LIST_LINES)
        raise CommandError(f"{first}\t{file}: No such file or directory.")
    if first > len(text):
        raise CommandError(f'Line number {first} out of range; "{file}" has {len(text)} lines.')
    last = min(len(text), first + LIST_LINES - 1)
    for number in range(first, last + 1):
        dbg.console.line(f"{number}\t{text[number - 1]}")
    dbg.list_next = (file, last + 1)

"""The call stack by the frame-pointer chain (the guests keep RBP, see
guests/build.py), the way gdb unwinds code without CFI.

A frame built by ``push rbp; mov rbp, rsp`` holds the caller's RBP at
``[rbp]`` and the return address at ``[rbp+8]``. The innermost frame may not
be built yet (stopped at the ``push`` or the ``mov``) or already torn down
(at the ``ret``): those cases read the return address from RSP instead.
The walk stops cleanly at the end of the chain (RBP 0, as start.S leaves
it, or a zero return address), and with a note at anything that looks like
garbage: unreadable memory, a frame pointer that does not move outwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from replayvm.debugger.symbols import SymbolTable
from replayvm.errors import ReplayVMError

if TYPE_CHECKING:
    from replayvm.session.timeline import DebugSession

MAX_FRAMES = 256
PUSH_RBP = 0x55


@dataclass(frozen=True, slots=True)
class Frame:
    level: int
    pc: int


@dataclass(slots=True)
class Backtrace:
    frames: list[Frame]
    stopped: str = ""  # why the walk ended early, if it did ("" at the end of the chain)


def _word(session: DebugSession, address: int) -> int:
    return int.from_bytes(session.read_memory(address, 8), "little")


def _innermost_caller(session: DebugSession, symbols: SymbolTable, regs: dict[str, int]) -> tuple[int, int]:
    """(return address, caller's RBP) for the frame RIP is in."""
    rip, rsp, rbp = regs["rip"], regs["rsp"], regs["rbp"]
    func = symbols.function_at(rip)
    insn = session.instruction_at(rip)
    mnemonic, operands = (insn.mnemonic, insn.op_str) if insn is not None else ("", "")
    at_entry = (func is not None and rip == func.address) or (mnemonic == "push" and operands == "rbp")
    if at_entry or mnemonic == "ret":
        return _word(session, rsp), rbp
    after_push = func is not None and rip == func.address + 1 and session.read_memory(func.address, 1)[0] == PUSH_RBP
    if after_push or (mnemonic == "mov" and operands == "rbp, rsp"):
        return _word(session, rsp + 8), _word(session, rsp)
    return _word(session, rbp + 8), _word(session, rbp)


def backtrace(session: DebugSession, symbols: SymbolTable, limit: int = MAX_FRAMES) -> Backtrace:
    regs = session.registers()
    trace = Backtrace([Frame(0, regs["rip"])])
    try:
        ret, rbp = _innermost_caller(session, symbols, regs)
    except ReplayVMError as e:
        trace.stopped = f"Backtrace stopped: {e}"
        return trace
    previous_rbp = regs["rsp"]
    while ret != 0:
        if len(trace.frames) >= limit:
            trace.stopped = "(More stack frames follow...)"
            break
        if not _is_code(session, ret):
            trace.stopped = f"Backtrace stopped: return address {ret:#x} is not in memory"
            break
        trace.frames.append(Frame(len(trace.frames), ret))
        if rbp == 0:
            break  # the outermost frame: start.S zeroes RBP before the first call
        if rbp <= previous_rbp or rbp & 7:
            trace.stopped = "Backtrace stopped: previous frame inner to this frame (corrupt stack?)"
            break
        try:
            ret, previous_rbp, rbp = _word(session, rbp + 8), rbp, _word(session, rbp)
        except ReplayVMError as e:
            trace.stopped = f"Backtrace stopped: {e}"
            break
    return trace


def _is_code(session: DebugSession, address: int) -> bool:
    try:
        session.read_memory(address, 1)
    except ReplayVMError:
        return False
    return True

"""The frame-pointer walk on a hand-made stack (no machine needed)."""

from __future__ import annotations

from types import SimpleNamespace

from replayvm.debugger.frames import backtrace
from replayvm.debugger.symbols import Section, Symbol, SymbolTable
from replayvm.session.timeline import DebuggerError

TEXT = Section(".text", 0x1000, 0x2000, True)
FUNCS = [Symbol(name, addr, 0x100, "func", ".text", True) for name, addr in (("inner", 0x1000), ("outer", 0x1100))]
CODE = {0x1000: ("push", "rbp"), 0x1001: ("mov", "rbp, rsp"), 0x1050: ("mov", "eax, 1"), 0x10FF: ("ret", "")}


class FakeSession:
    def __init__(self, regs: dict[str, int], stack: dict[int, int]) -> None:
        self.regs = regs
        self.stack = stack  # address -> 8-byte word

    def registers(self) -> dict[str, int]:
        return self.regs

    def read_memory(self, address: int, length: int) -> bytes:
        if 0x1000 <= address < 0x2000:
            return bytes([0x55] * length)
        if address not in self.stack:
            raise DebuggerError(f"Cannot access memory at address {address:#x}")
        return self.stack[address].to_bytes(8, "little")[:length]

    def instruction_at(self, address: int) -> SimpleNamespace | None:
        found = CODE.get(address)
        return SimpleNamespace(mnemonic=found[0], op_str=found[1]) if found else None


def walk(rip: int, rsp: int, rbp: int, stack: dict[int, int]) -> tuple[list[int], str]:
    session = FakeSession({"rip": rip, "rsp": rsp, "rbp": rbp}, stack)
    trace = backtrace(session, SymbolTable(FUNCS, [TEXT]))  # type: ignore[arg-type]
    return [f.pc for f in trace.frames], trace.stopped


def test_a_built_frame_reads_the_return_address_above_rbp() -> None:
    # inner's frame at 0x8000 -> outer's at 0x8100 -> end of chain (rbp 0)
    stack = {0x8000: 0x8100, 0x8008: 0x1150, 0x8100: 0, 0x8108: 0x1180}
    assert walk(0x1050, 0x7FF0, 0x8000, stack) == ([0x1050, 0x1150, 0x1180], "")


def test_at_function_entry_the_return_address_is_at_rsp() -> None:
    stack = {0x7FF8: 0x1150, 0x8100: 0, 0x8108: 0x1180}
    assert walk(0x1000, 0x7FF8, 0x8100, stack) == ([0x1000, 0x1150, 0x1180], "")


def test_after_push_rbp_the_return_address_is_above_it() -> None:
    stack = {0x7FF0: 0x8100, 0x7FF8: 0x1150, 0x8100: 0, 0x8108: 0x1180}
    assert walk(0x1001, 0x7FF0, 0x8100, stack) == ([0x1001, 0x1150, 0x1180], "")


def test_a_frame_pointer_that_does_not_move_outwards_stops_the_walk() -> None:
    stack = {0x8000: 0x7000, 0x8008: 0x1150}
    pcs, note = walk(0x1050, 0x7FF0, 0x8000, stack)
    assert pcs == [0x1050, 0x1150]
    assert note == "Backtrace stopped: previous frame inner to this frame (corrupt stack?)"


def test_unreadable_stack_or_return_address_stops_the_walk_with_a_note() -> None:
    assert walk(0x1050, 0x7FF0, 0xDEAD0000, {}) == (
        [0x1050],
        "Backtrace stopped: Cannot access memory at address 0xdead0008",
    )
    pcs, note = walk(0x1050, 0x7FF0, 0x8000, {0x8000: 0x8100, 0x8008: 0x123456789})
    assert pcs == [0x1050] and note == "Backtrace stopped: return address 0x123456789 is not in memory"


def test_a_cycle_is_bounded() -> None:
    stack = {0x8000 + 0x10 * i: 0x8010 + 0x10 * i for i in range(1000)}
    stack |= {0x8008 + 0x10 * i: 0x1150 for i in range(1000)}
    pcs, note = walk(0x1050, 0x7FF0, 0x8000, stack)
    assert len(pcs) == 256 and note == "(More stack frames follow...)"

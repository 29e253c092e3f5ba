"""Expressions evaluated against the live session: registers, memory, symbols.

:class:`SessionContext` is what ``print`` evaluates in, and what breakpoint
conditions evaluate in while the guest runs (inside a Unicorn hook, so it
reads registers through ``session.registers()`` each time, once per
evaluation). It also knows the x86 sub-registers (``$eax``, ``$al``, ...)
and how to write registers and memory for ``set`` (a diversion).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replayvm.debugger.expr import LONG, CType, ExprError, Value, address, integer
from replayvm.debugger.symbols import SymbolTable
from replayvm.errors import ReplayVMError

if TYPE_CHECKING:
    from replayvm.session.timeline import DebugSession

ALIASES = {"pc": "rip", "sp": "rsp", "fp": "rbp", "eflags": "rflags"}
ADDRESS_REGISTERS = frozenset({"rip", "rsp", "rbp"})
WRITABLE = frozenset(
    {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip", "rflags"} | {f"r{i}" for i in range(8, 16)}
)


def _sub_registers() -> dict[str, tuple[str, int, int]]:
    """name -> (full register, shift, bits), as gdb's amd64 pseudo-registers."""
    subs: dict[str, tuple[str, int, int]] = {}
    for x in "abcd":
        full = f"r{x}x"
        subs |= {f"e{x}x": (full, 0, 32), f"{x}x": (full, 0, 16), f"{x}l": (full, 0, 8), f"{x}h": (full, 8, 8)}
    for name in ("si", "di", "bp", "sp"):
        full = f"r{name}"
        subs |= {f"e{name}": (full, 0, 32), f"{name}l": (full, 0, 8)}
        if name != "sp":  # $sp is the stack pointer itself
            subs[name] = (full, 0, 16)
    for i in range(8, 16):
        full = f"r{i}"
        subs |= {f"r{i}d": (full, 0, 32), f"r{i}w": (full, 0, 16), f"r{i}l": (full, 0, 8)}
    return subs


SUB_REGISTERS = _sub_registers()
_SIGNED = {8: CType("int8_t", 1, True), 16: CType("int16_t", 2, True), 32: CType("int", 4, True)}


def register_names(session_registers: list[str]) -> list[str]:
    """Every name ``$NAME`` accepts, for completion."""
    return sorted(set(session_registers) | set(ALIASES) | set(SUB_REGISTERS))


class SessionContext:
    """An expression context over a :class:`DebugSession`."""

    def __init__(self, session: DebugSession, symbols: SymbolTable, history: list[Value]) -> None:
        self.session = session
        self.symbols = symbols
        self.history_values = history
        self._registers: dict[str, int] | None = None

    def fresh(self) -> SessionContext:
        """Forget cached registers: the machine may have moved."""
        self._registers = None
        return self

    def registers(self) -> dict[str, int]:
        if self._registers is None:
            self._registers = self.session.registers()
        return self._registers

    # -- expr.Context -------------------------------------------------------------
    def register(self, name: str) -> Value:
        regs = self.registers()
        canonical = ALIASES.get(name, name)
        if canonical in regs:
            value = regs[canonical]
            return address(value) if canonical in ADDRESS_REGISTERS else integer(value, LONG)
        if name in SUB_REGISTERS:
            full, shift, bits = SUB_REGISTERS[name]
            return integer(regs[full] >> shift & ((1 << bits) - 1), _SIGNED[bits])
        raise ExprError(f'Invalid register "${name}".')

    def symbol(self, name: str) -> Value:
        found = self.symbols.address_of(name)
        if found is None:
            raise ExprError(f'No symbol "{name}" in current context.', symbol=name)
        return address(found)

    def read(self, address: int, size: int) -> bytes:
        try:
            return self.session.read_memory(address, size)
        except ReplayVMError as e:
            raise ExprError(str(e)) from None

    def history(self, index: int, relative: bool) -> Value:
        values = self.history_values
        if relative:
            if index >= len(values):
                raise ExprError("History is empty." if not values else f"History has not yet reached $${index}.")
            return values[-1 - index]
        if not 1 <= index <= len(values):
            raise ExprError(f"History has not yet reached ${index}.")
        return values[index - 1]

    # -- writing (a diversion) -------------------------------------------------------
    def write_register(self, name: str, value: int) -> None:
        canonical = ALIASES.get(name, name)
        if canonical in WRITABLE:
            self.session.set_register(canonical, value)
        elif name in SUB_REGISTERS:
            full, shift, bits = SUB_REGISTERS[name]
            mask = ((1 << bits) - 1) << shift
            old = self.registers()[full]
            self.session.set_register(full, (old & ~mask) | ((value << shift) & mask))
        elif canonical in self.registers():
            raise ExprError(f"Register ${name} cannot be written.")
        else:
            raise ExprError(f'Invalid register "${name}".')
        self._registers = None

    def write_memory(self, address: int, value: int, size: int) -> None:
        self.session.write_memory(address, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

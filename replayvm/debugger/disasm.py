"""x86-64 disassembly with capstone, annotated with guest symbols.

Lines read like gdb's (in Intel syntax, capstone's default): the mnemonic
padded to six columns, a branch or call target followed by ``<func+off>``,
and a RIP-relative memory operand followed by ``# 0xADDR <symbol>``. Bytes
capstone cannot decode show as ``(bad)``, one byte at a time, so a listing
always moves on.
"""

from __future__ import annotations

from dataclasses import dataclass

import capstone
from capstone import x86

from replayvm.debugger.symbols import SymbolTable

MAX_INSN = 15  # the longest x86 instruction, in bytes


@dataclass(frozen=True, slots=True)
class Instruction:
    address: int
    size: int
    mnemonic: str
    text: str  # mnemonic and operands, annotated


class Disassembler:
    def __init__(self, symbols: SymbolTable) -> None:
        self.symbols = symbols
        self._md: dict[int, capstone.Cs] = {}
        for bits, mode in ((16, capstone.CS_MODE_16), (32, capstone.CS_MODE_32), (64, capstone.CS_MODE_64)):
            md = capstone.Cs(capstone.CS_ARCH_X86, mode)
            md.detail = True
            self._md[bits] = md

    def label(self, address: int, *, code: bool = True) -> str:
        """``<kprintf+4>``, ``<kprintf>``, or "" when no symbol covers ``address``."""
        found = self.symbols.symbolize(address, code=code)
        if found is None:
            return ""
        name, offset = found
        return f"<{name}+{offset}>" if offset else f"<{name}>"

    def decode(self, code: bytes, address: int, count: int, bits: int = 64) -> list[Instruction]:
        """Up to ``count`` instructions from ``code`` (the bytes at ``address``),
        as ``bits``-bit code (16, 32 or 64: the CPU's mode, from CS)."""
        md = self._md[bits]
        out: list[Instruction] = []
        pos = 0
        while len(out) < count and pos < len(code):
            insn = next(md.disasm(code[pos : pos + MAX_INSN], address + pos, 1), None)
            if insn is None:
                out.append(Instruction(address + pos, 1, "(bad)", "(bad)"))
                pos += 1
                continue
            out.append(Instruction(insn.address, insn.size, insn.mnemonic, self._text(insn)))
            pos += insn.size
        return out

    def _text(self, insn: capstone.CsInsn) -> str:
        text = f"{insn.mnemonic:<6} {insn.op_str}".rstrip()
        note = ""
        for op in insn.operands:
            if op.type == x86.X86_OP_IMM and (insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL)):
                label = self.label(op.imm & 0xFFFF_FFFF_FFFF_FFFF)
                if label:
                    text += f" {label}"
            elif op.type == x86.X86_OP_MEM and op.mem.base == x86.X86_REG_RIP and op.mem.index == 0:
                target = (insn.address + insn.size + op.mem.disp) & 0xFFFF_FFFF_FFFF_FFFF
                label = self.label(target, code=False)
                note = f"        # {target:#x}" + (f" {label}" if label else "")
        return text + note

"""Event injection: delivering exceptions and interrupts through the guest's IDT.

Unicorn never delivers an exception or interrupt itself (DESIGN.md §3), so the
hypervisor does what the CPU would, for IA-32e mode (Intel SDM vol 3A §6.14):
read the 16-byte gate from the IDT, check its type, DPL and presence, pick the
stack (IST entry, TSS.RSP0 on a privilege change, else the current stack),
align it to 16 bytes, push SS, RSP, RFLAGS, CS, RIP and the error code, clear
TF/NT/RF (and IF for an interrupt gate), and load CS:RIP from the gate. A fault
while doing so is handled as the CPU does (§6.15, table 6-5): benign faults
are delivered in turn, contributory-on-contributory and page-fault-on-page-
fault/contributory become #DF, and a fault while delivering #DF is a triple
fault (:class:`TripleFault`, the platform shuts down).

The delivery edits a :class:`CpuContext`; the caller restores it. All guest
memory is touched through the page-table walker, setting A/D bits like the CPU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from unicorn.x86_const import (
    UC_X86_REG_CR2,
    UC_X86_REG_CS,
    UC_X86_REG_GDTR,
    UC_X86_REG_IDTR,
    UC_X86_REG_RFLAGS,
    UC_X86_REG_RIP,
    UC_X86_REG_RSP,
    UC_X86_REG_SS,
    UC_X86_REG_TR,
)

from replayvm.engine.context import DESC_DPL_SHIFT, DESC_G, DESC_L, DESC_P, DESC_TYPE_CODE, CpuContext
from replayvm.engine.memory import GuestMemoryError, GuestRam
from replayvm.engine.paging import PageFault, PagingRegs, translate
from replayvm.engine.uc_abi import SEG_CS, SEG_SS
from replayvm.errors import GuestError

# Exception vectors (Intel SDM vol 3A table 6-1).
DE, DB, NMI, BP, OF, BR, UD, NM, DF = 0, 1, 2, 3, 4, 5, 6, 7, 8
TS, NP, SS, GP, PF, MF, AC, MC, XM = 10, 11, 12, 13, 14, 16, 17, 18, 19
VECTORS_WITH_ERROR_CODE = frozenset({DF, TS, NP, SS, GP, PF, AC, 21, 29, 30})
CONTRIBUTORY = frozenset({DE, TS, NP, SS, GP})
EXCEPTION_NAMES = {
    0: "#DE divide error",
    1: "#DB debug",
    2: "NMI",
    3: "#BP breakpoint",
    4: "#OF overflow",
    5: "#BR bound range",
    6: "#UD invalid opcode",
    7: "#NM device not available",
    8: "#DF double fault",
    10: "#TS invalid TSS",
    11: "#NP segment not present",
    12: "#SS stack fault",
    13: "#GP general protection",
    14: "#PF page fault",
    16: "#MF x87 error",
    17: "#AC alignment check",
    18: "#MC machine check",
    19: "#XM SIMD exception",
    20: "#VE virtualization",
    21: "#CP control protection",
}

GATE_INTERRUPT = 0xE
GATE_TRAP = 0xF

RFLAGS_TF = 1 << 8
RFLAGS_IF = 1 << 9
RFLAGS_NT = 1 << 14
RFLAGS_RF = 1 << 16
RFLAGS_VM = 1 << 17

_GATE = struct.Struct("<QQ")


class TripleFault(GuestError):
    """A fault while delivering #DF: real hardware shuts down."""


@dataclass(frozen=True, slots=True)
class Event:
    vector: int
    error_code: int | None = None
    kind: str = "exception"  # "exception" | "external" | "software"
    cr2: int | None = None
    insn_len: int = 0  # software interrupts: INT n is 2 bytes, INT3 1; a fault raised
    # while delivering one (gate DPL < CPL, not present) points at the instruction


class _Fault(Exception):
    def __init__(self, vector: int, error_code: int, cr2: int | None = None) -> None:
        super().__init__(vector)
        self.vector = vector
        self.error_code = error_code
        self.cr2 = cr2


def exception_name(vector: int) -> str:
    return EXCEPTION_NAMES.get(vector, f"vector {vector}")


class Injector:
    """Delivers events into one vCPU's guest (needs RAM and current paging)."""

    def __init__(self, ram: GuestRam) -> None:
        self.ram = ram

    # -- guest-virtual memory at CPL 0 (supervisor accesses by the CPU) -----
    def _translate(self, paging: PagingRegs, vaddr: int, is_write: bool) -> int:
        try:
            return translate(paging, vaddr, self.ram.read_int, self.ram.write_int, is_write=is_write, set_ad=True).paddr
        except PageFault as pf:
            raise _Fault(PF, pf.error_code, pf.vaddr) from None
        except GuestMemoryError as e:
            raise GuestError(f"event delivery walked page tables outside RAM: {e}") from None

    def _read(self, paging: PagingRegs, vaddr: int, size: int) -> int:
        value = 0
        for i in range(size):  # byte-wise only when the access crosses a page
            if i == 0 or (vaddr + i) & 0xFFF == 0:
                paddr = self._translate(paging, vaddr + i, False)
                chunk = min(size - i, 0x1000 - ((vaddr + i) & 0xFFF))
                value |= self._phys_read(paddr, chunk) << (8 * i)
        return value

    def read_virtual(self, paging: PagingRegs, vaddr: int, size: int) -> int:
        """Read guest-virtual memory as the CPU would at CPL 0 (GuestError if it cannot)."""
        try:
            return self._read(paging, vaddr, size)
        except _Fault as f:
            raise GuestError(f"{exception_name(f.vector)} reading guest-virtual {vaddr:#x}") from None

    def _write_u64(self, paging: PagingRegs, vaddr: int, value: int) -> None:
        vaddr &= 0xFFFF_FFFF_FFFF_FFFF
        if (vaddr & 0xFFF) <= 0xFF8:
            self._phys_write(self._translate(paging, vaddr, True), 8, value)
            return
        for i in range(8):
            self._phys_write(self._translate(paging, vaddr + i, True), 1, (value >> (8 * i)) & 0xFF)

    def _phys_read(self, paddr: int, size: int) -> int:
        try:
            return self.ram.read_int(paddr, size)
        except GuestMemoryError as e:
            raise GuestError(f"event delivery read outside RAM: {e}") from None

    def _phys_write(self, paddr: int, size: int, value: int) -> None:
        try:
            self.ram.write_int(paddr, size, value)
        except GuestMemoryError as e:
            raise GuestError(f"event delivery wrote outside RAM: {e}") from None

    # -- delivery ------------------------------------------------------------
    def inject(self, ctx: CpuContext, paging: PagingRegs, event: Event, return_rip: int) -> int:
        """Deliver ``event`` as if it happened with RIP = ``return_rip``; return the handler's RIP."""
        vector, error_code, kind, cr2 = event.vector, event.error_code, event.kind, event.cr2
        if not paging.efer & (1 << 10):
            raise TripleFault(f"{exception_name(vector)} in 32-bit mode: ReplayVM delivers events only in IA-32e mode")
        for _ in range(3):
            if cr2 is not None:
                ctx.set_reg(UC_X86_REG_CR2, cr2)
            try:
                return self._deliver_once(ctx, paging, vector, error_code, kind, return_rip)
            except _Fault as f:
                if vector == DF:
                    raise TripleFault(
                        f"triple fault: {exception_name(f.vector)} while delivering #DF at RIP {return_rip:#x}"
                    ) from None
                first, second = vector, f.vector
                double = (first in CONTRIBUTORY and second in CONTRIBUTORY) or (
                    first == PF and (second in CONTRIBUTORY or second == PF)
                )
                if double:
                    vector, error_code, cr2 = DF, 0, None
                else:
                    vector, error_code, cr2 = f.vector, f.error_code, f.cr2
                if kind == "software":
                    return_rip -= event.insn_len  # the fault belongs to the INT instruction
                kind = "exception"
        raise TripleFault(f"cannot deliver {exception_name(vector)} at RIP {return_rip:#x}")  # pragma: no cover

    def _deliver_once(
        self, ctx: CpuContext, paging: PagingRegs, vector: int, error_code: int | None, kind: str, rip: int
    ) -> int:
        ext = 1 if kind == "external" else 0
        idt_err = vector * 8 + 2 + ext
        _, idt_base, idt_limit, _ = ctx.reg(UC_X86_REG_IDTR)
        if vector * 16 + 15 > idt_limit:
            raise _Fault(GP, idt_err)
        lo, hi = _GATE.unpack(self._read(paging, idt_base + vector * 16, 16).to_bytes(16, "little"))
        offset = (lo & 0xFFFF) | ((lo >> 48) & 0xFFFF) << 16 | (hi & 0xFFFF_FFFF) << 32
        selector = (lo >> 16) & 0xFFFF
        ist = (lo >> 32) & 7
        gate_type = (lo >> 40) & 0xF
        gate_dpl = (lo >> 45) & 3
        present = (lo >> 47) & 1
        cpl = ctx.cpl
        if gate_type not in (GATE_INTERRUPT, GATE_TRAP):
            raise _Fault(GP, idt_err)
        if kind == "software" and gate_dpl < cpl:
            raise _Fault(GP, idt_err)
        if not present:
            raise _Fault(NP, idt_err)

        # Target code segment, from the GDT (SDM vol 3A §6.14.1).
        if selector & 0xFFFC == 0 or selector & 4:
            raise _Fault(GP, ext)
        _, gdt_base, gdt_limit, _ = ctx.reg(UC_X86_REG_GDTR)
        if (selector & ~7) + 7 > gdt_limit:
            raise _Fault(GP, (selector & 0xFFFC) | ext)
        desc = self._read(paging, gdt_base + (selector & ~7), 8)
        e1, e2 = desc & 0xFFFF_FFFF, desc >> 32
        if not e2 & DESC_TYPE_CODE or not e2 & DESC_L:
            raise _Fault(GP, (selector & 0xFFFC) | ext)
        if not e2 & DESC_P:
            raise _Fault(NP, (selector & 0xFFFC) | ext)
        new_cpl = (e2 >> DESC_DPL_SHIFT) & 3
        if new_cpl > cpl:
            raise _Fault(GP, (selector & 0xFFFC) | ext)

        old_rsp = ctx.reg(UC_X86_REG_RSP)
        old_ss = ctx.reg(UC_X86_REG_SS)
        old_cs = ctx.reg(UC_X86_REG_CS)
        rflags = ctx.reg(UC_X86_REG_RFLAGS)
        if ist or new_cpl < cpl:
            _, tss_base, tss_limit, _ = ctx.reg(UC_X86_REG_TR)
            slot = 0x24 + 8 * (ist - 1) if ist else 4 + 8 * new_cpl
            if slot + 7 > tss_limit:
                raise _Fault(TS, ctx.reg(UC_X86_REG_TR)[0] & 0xFFFC)
            rsp = self._read(paging, tss_base + slot, 8)
        else:
            rsp = old_rsp
        rsp &= ~0xF
        frame = [old_ss, old_rsp, rflags, old_cs, rip]
        if error_code is not None and kind != "software":
            frame.append(error_code & 0xFFFF_FFFF)
        for value in frame:
            rsp = (rsp - 8) & 0xFFFF_FFFF_FFFF_FFFF
            self._write_u64(paging, rsp, value)

        clear = RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM
        if gate_type == GATE_INTERRUPT:
            clear |= RFLAGS_IF
        ctx.set_reg(UC_X86_REG_RSP, rsp)
        ctx.set_reg(UC_X86_REG_RFLAGS, rflags & ~clear)
        ctx.set_reg(UC_X86_REG_RIP, offset)
        limit = (e1 & 0xFFFF) | (e2 & 0xF0000)
        if e2 & DESC_G:
            limit = (limit << 12) | 0xFFF
        if new_cpl != cpl:
            ctx.load_segment(SEG_SS, new_cpl, 0, 0, new_cpl << DESC_DPL_SHIFT)
        ctx.load_segment(SEG_CS, (selector & ~3) | new_cpl, 0, limit, e2)
        ctx.clear_old_exception()
        return offset

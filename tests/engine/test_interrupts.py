"""Event injection through a hand-built 64-bit IDT (Intel SDM vol 3A §6.14).

Unicorn starts in 64-bit mode with paging off, so linear = physical and the
tests can lay out the IDT, GDT, TSS and code in RAM directly.
"""

import struct

import pytest
from unicorn.x86_const import UC_X86_REG_GDTR, UC_X86_REG_IDTR, UC_X86_REG_RIP, UC_X86_REG_RSP, UC_X86_REG_TR

from replayvm.engine.exits import ExitReason
from replayvm.engine.memory import GuestRam
from replayvm.engine.vcpu import Vcpu

GDT, IDT, TSS = 0x1000, 0x2000, 0x3000
CODE, HANDLER, STACK, IST_STACK = 0x10000, 0x20000, 0x80000, 0x90000
KERNEL_CS = 0x08
CODE64 = 0x00209A0000000000  # P, S, code, L


def gate(offset: int, ist: int = 0, gate_type: int = 0xE, dpl: int = 0, present: bool = True) -> bytes:
    lo = (offset & 0xFFFF) | (KERNEL_CS << 16) | (ist << 32) | (gate_type << 40) | (dpl << 45)
    lo |= int(present) << 47 | ((offset >> 16) & 0xFFFF) << 48
    return struct.pack("<QQ", lo, offset >> 32)


@pytest.fixture
def cpu() -> Vcpu:
    ram = GuestRam(1 << 20)
    v = Vcpu(ram, pio_read=lambda p, s: 0, pio_write=lambda p, s, val: None)
    ram.write(GDT, struct.pack("<QQ", 0, CODE64))
    for vec in range(32):
        ram.write(IDT + 16 * vec, gate(HANDLER + vec * 0x10))
        ram.write(HANDLER + vec * 0x10, b"\xf4")  # hlt
    tss = bytearray(104)
    struct.pack_into("<Q", tss, 4, 0x70000)  # RSP0
    struct.pack_into("<Q", tss, 0x24, IST_STACK)  # IST1
    ram.write(TSS, bytes(tss))
    v.uc.reg_write(UC_X86_REG_GDTR, (0, GDT, 15, 0))
    v.uc.reg_write(UC_X86_REG_IDTR, (0, IDT, 32 * 16 - 1, 0))
    v.uc.reg_write(UC_X86_REG_TR, (0x18, TSS, 103, 0x8B00))
    v.uc.reg_write(UC_X86_REG_RSP, STACK)
    return v


def run_code(cpu: Vcpu, code: bytes) -> ExitReason:
    cpu.ram.write(CODE, code)
    cpu.uc.reg_write(UC_X86_REG_RIP, CODE)
    return cpu.run(1000)


def frame(cpu: Vcpu, words: int) -> list[int]:
    rsp = cpu.uc.reg_read(UC_X86_REG_RSP)
    return list(struct.unpack(f"<{words}Q", cpu.ram.read(rsp, 8 * words)))


def test_int3_is_a_trap_returning_after_the_instruction(cpu: Vcpu) -> None:
    assert run_code(cpu, b"\x90\xcc") is ExitReason.HLT
    assert cpu.rip == HANDLER + 3 * 0x10 + 1
    rip, cs, _rflags, rsp, _ss = frame(cpu, 5)
    assert (rip, cs & 0xFFFF, rsp) == (CODE + 2, 0, STACK)
    assert cpu.icount == 3  # nop, int3, hlt
    assert cpu.stats.exceptions[3] == 1


def test_divide_error_is_a_fault_returning_to_the_instruction(cpu: Vcpu) -> None:
    run_code(cpu, b"\x31\xc9\xf7\xf1")  # xor ecx,ecx; div ecx
    assert cpu.rip == HANDLER + 1
    assert frame(cpu, 1)[0] == CODE + 2


def test_second_fault_is_not_promoted_to_double_fault(cpu: Vcpu) -> None:
    # Two #DE in a row: Unicorn's stale old_exception would make the second #DF.
    cpu.ram.write(HANDLER, b"\x31\xc9\xf7\xf1")  # the #DE handler divides by zero again
    run_code(cpu, b"\x31\xc9\xf7\xf1")
    assert cpu.stats.exceptions[0] >= 2
    assert cpu.stats.exceptions[8] == 0


def test_general_protection_pushes_error_code(cpu: Vcpu) -> None:
    run_code(cpu, b"\x66\xb8\x34\x12\x8e\xd8")  # mov ax,0x1234; mov ds,ax
    assert cpu.rip == HANDLER + 13 * 0x10 + 1
    err, rip = frame(cpu, 2)
    assert (err, rip) == (0x1234, CODE + 4)


def test_invalid_opcode_delivers_ud(cpu: Vcpu) -> None:
    run_code(cpu, b"\x0f\x0b")  # ud2
    assert cpu.rip == HANDLER + 6 * 0x10 + 1
    assert frame(cpu, 1)[0] == CODE


def test_ist_gate_switches_stack(cpu: Vcpu) -> None:
    cpu.ram.write(IDT + 16 * 3, gate(HANDLER + 0x30, ist=1))
    run_code(cpu, b"\xcc")
    assert cpu.uc.reg_read(UC_X86_REG_RSP) == IST_STACK - 40


def test_interrupt_gate_clears_if_trap_gate_keeps_it(cpu: Vcpu) -> None:
    run_code(cpu, b"\xfb\x90\xcc")  # sti; nop; int3
    assert not cpu.interrupts_enabled()
    cpu.ram.write(IDT + 16 * 3, gate(HANDLER + 0x30, gate_type=0xF))
    cpu.uc.reg_write(UC_X86_REG_RSP, STACK)
    run_code(cpu, b"\xfb\x90\xcc")
    assert cpu.interrupts_enabled()


def test_external_interrupt_pushes_current_rip(cpu: Vcpu) -> None:
    cpu.ram.write(IDT + 16 * 0x20, gate(HANDLER + 0x200))
    cpu.ram.write(HANDLER + 0x200, b"\xf4")
    cpu.uc.reg_write(UC_X86_REG_IDTR, (0, IDT, 0x21 * 16 - 1, 0))
    cpu.uc.reg_write(UC_X86_REG_RIP, CODE + 5)
    cpu.inject_interrupt(0x20)
    assert cpu.rip == HANDLER + 0x200
    assert frame(cpu, 1)[0] == CODE + 5
    assert cpu.stats.interrupts[0x20] == 1


def test_not_present_gate_escalates_to_double_fault(cpu: Vcpu) -> None:
    cpu.ram.write(IDT + 16 * 0, gate(HANDLER, present=False))
    run_code(cpu, b"\x31\xc9\xf7\xf1")
    assert cpu.rip == HANDLER + 8 * 0x10 + 1  # #DE -> #NP (contributory) -> #DF


def test_fault_while_delivering_double_fault_shuts_down(cpu: Vcpu) -> None:
    cpu.uc.reg_write(UC_X86_REG_IDTR, (0, IDT, 0, 0))  # every vector beyond the limit
    assert run_code(cpu, b"\x31\xc9\xf7\xf1") is ExitReason.SHUTDOWN
    assert "triple fault" in cpu.stop_message


def test_external_interrupt_beyond_idt_limit_is_gp_with_ext_bit(cpu: Vcpu) -> None:
    cpu.uc.reg_write(UC_X86_REG_RIP, CODE)
    cpu.inject_interrupt(0x20)
    assert cpu.rip == HANDLER + 13 * 0x10
    assert frame(cpu, 1)[0] == 0x20 * 8 + 2 + 1  # IDT bit, EXT bit

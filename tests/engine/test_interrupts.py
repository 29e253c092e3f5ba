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


def test_syscall_enters_lstar_with_star_selectors(cpu: Vcpu) -> None:
    from unicorn.x86_const import UC_X86_REG_CS, UC_X86_REG_MSR, UC_X86_REG_R11, UC_X86_REG_RCX, UC_X86_REG_SS

    cpu.uc.reg_write(UC_X86_REG_MSR, (0xC0000080, cpu.uc.reg_read(UC_X86_REG_MSR, 0xC0000080) | 1))  # EFER.SCE
    cpu.uc.reg_write(UC_X86_REG_MSR, (0xC0000081, (0x08 << 32)))  # STAR: kernel CS 0x08, SS 0x10
    cpu.uc.reg_write(UC_X86_REG_MSR, (0xC0000082, HANDLER + 0x300))  # LSTAR
    cpu.uc.reg_write(UC_X86_REG_MSR, (0xC0000084, 0x200))  # FMASK clears IF
    cpu.ram.write(HANDLER + 0x300, b"\xf4")
    run_code(cpu, b"\xfb\x0f\x05")  # sti; syscall
    assert cpu.rip == HANDLER + 0x301
    assert cpu.uc.reg_read(UC_X86_REG_RCX) == CODE + 3
    assert cpu.uc.reg_read(UC_X86_REG_R11) & 0x200  # the saved RFLAGS had IF
    assert not cpu.interrupts_enabled()
    assert (cpu.uc.reg_read(UC_X86_REG_CS), cpu.uc.reg_read(UC_X86_REG_SS)) == (0x08, 0x10)


def test_syscall_without_efer_sce_is_invalid_opcode(cpu: Vcpu) -> None:
    run_code(cpu, b"\x0f\x05")
    assert cpu.rip == HANDLER + 6 * 0x10 + 1
    assert frame(cpu, 1)[0] == CODE


def test_rdtsc_reads_virtual_time_not_host_time(cpu: Vcpu) -> None:
    from unicorn.x86_const import UC_X86_REG_RAX, UC_X86_REG_RDX

    cpu.idle_ns = 5_000_000_000
    run_code(cpu, b"\x90\x90\x0f\x31\xf4")  # nop; nop; rdtsc; hlt
    tsc = cpu.uc.reg_read(UC_X86_REG_RDX) << 32 | cpu.uc.reg_read(UC_X86_REG_RAX)
    assert tsc == 5_000_000_000 + 3  # the RDTSC itself is the third instruction
    assert cpu.stats.by_reason["rdtsc"] == 1


def test_rdtscp_also_returns_tsc_aux(cpu: Vcpu) -> None:
    from unicorn.x86_const import UC_X86_REG_MSR, UC_X86_REG_RAX, UC_X86_REG_RCX

    cpu.uc.reg_write(UC_X86_REG_MSR, (0xC0000103, 7))
    run_code(cpu, b"\x0f\x01\xf9\xf4")  # rdtscp; hlt
    assert (cpu.uc.reg_read(UC_X86_REG_RAX), cpu.uc.reg_read(UC_X86_REG_RCX)) == (1, 7)


def test_cpuid_exits_to_the_vmm_model(cpu: Vcpu) -> None:
    from unicorn.x86_const import UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EDX

    run_code(cpu, b"\xb8\x00\x00\x00\x40\x0f\xa2\xf4")  # mov eax,0x40000000; cpuid; hlt
    sig = b"".join(cpu.uc.reg_read(r).to_bytes(4, "little") for r in (UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EDX))
    assert sig.rstrip(b"\0") == b"ReplayVM"
    assert cpu.stats.by_reason["cpuid"] == 1


def test_budget_ends_the_slice_with_exact_count(cpu: Vcpu) -> None:
    cpu.ram.write(CODE, b"\x90" * 100)
    cpu.uc.reg_write(UC_X86_REG_RIP, CODE)
    assert cpu.run(37) is ExitReason.SLICE_END
    assert (cpu.icount, cpu.rip) == (37, CODE + 37)


def test_mmio_accesses_exit_to_the_device_with_window_offsets() -> None:
    from unicorn.x86_const import UC_X86_REG_RAX

    ram = GuestRam(1 << 20)
    seen: list[tuple[str, int, int, int]] = []
    v = Vcpu(ram, pio_read=lambda p, s: 0, pio_write=lambda p, s, val: None)
    v.map_mmio(
        0xD000_0000,
        0x1000,
        lambda off, size: (seen.append(("r", off, size, 0)), 0x74726976)[1],
        lambda off, size, val: seen.append(("w", off, size, val)),
    )
    code = b"\x48\xb8" + (0xD000_0000).to_bytes(8, "little") + b"\x8b\x00"  # movabs rax, base; mov eax,[rax]
    code += b"\x48\xbb" + (0xD000_0070).to_bytes(8, "little") + b"\xc7\x03\x0f\x00\x00\x00"  # mov dword [rbx], 0xf
    ram.write(CODE, code + b"\xf4")
    v.uc.reg_write(UC_X86_REG_RIP, CODE)
    v.run(100)
    assert v.uc.reg_read(UC_X86_REG_RAX) == 0x74726976
    assert seen == [("r", 0, 4, 0), ("w", 0x70, 4, 0xF)]
    assert v.stats.by_reason["mmio"] == 2 and v.stats.mmio_pages[0xD000_0000] == 2


def test_mmio_window_must_be_page_aligned_above_ram() -> None:
    v = Vcpu(GuestRam(1 << 20), pio_read=lambda p, s: 0, pio_write=lambda p, s, val: None)
    with pytest.raises(ValueError):
        v.map_mmio(0xD000_0010, 0x1000, lambda o, s: 0, lambda o, s, val: None)

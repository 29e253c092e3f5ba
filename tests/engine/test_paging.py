"""The page-table walker against hand-built tables (Intel SDM vol 3A §4.5-4.7)."""

import pytest

from replayvm.engine.paging import (
    CR0_PG,
    CR0_WP,
    CR4_PAE,
    CR4_PSE,
    EFER_LMA,
    EFER_NXE,
    PF_I,
    PF_P,
    PF_U,
    PF_W,
    PTE_A,
    PTE_D,
    PTE_NX,
    PTE_P,
    PTE_PS,
    PTE_U,
    PTE_W,
    PageFault,
    PagingRegs,
    translate,
)


class Mem:
    def __init__(self) -> None:
        self.cells: dict[int, int] = {}

    def read(self, addr: int, size: int) -> int:
        return self.cells.get(addr, 0)

    def write(self, addr: int, size: int, value: int) -> None:
        self.cells[addr] = value


LONG = PagingRegs(CR0_PG | CR0_WP | 1, 0x1000, CR4_PAE, EFER_LMA | EFER_NXE)


def four_level(mem: Mem, vaddr: int, leaf_flags: int, frame: int = 0x200000) -> None:
    idx = [(vaddr >> s) & 0x1FF for s in (39, 30, 21, 12)]
    tables = [0x1000, 0x2000, 0x3000, 0x4000]
    for level in range(3):
        mem.cells[tables[level] + idx[level] * 8] = tables[level + 1] | PTE_P | PTE_W | PTE_U
    mem.cells[tables[3] + idx[3] * 8] = frame | leaf_flags


def test_paging_off_is_identity() -> None:
    t = translate(PagingRegs(1, 0, 0, 0), 0x12345, Mem().read)
    assert t.paddr == 0x12345


def test_four_level_4k_translation_keeps_offset() -> None:
    mem = Mem()
    four_level(mem, 0xFFFF_8000_0040_1234, PTE_P | PTE_W)
    t = translate(LONG, 0xFFFF_8000_0040_1234, mem.read)
    assert (t.paddr, t.page_size, t.writable, t.user) == (0x200234, 4096, True, False)


def test_not_present_faults_with_access_bits() -> None:
    mem = Mem()
    with pytest.raises(PageFault) as e:
        translate(LONG, 0x5000, mem.read, is_write=True, is_user=True)
    assert e.value.error_code == PF_W | PF_U
    assert e.value.vaddr == 0x5000


def test_user_access_to_supervisor_page_is_protection_fault() -> None:
    mem = Mem()
    four_level(mem, 0x400000, PTE_P | PTE_W)
    with pytest.raises(PageFault) as e:
        translate(LONG, 0x400000, mem.read, is_user=True)
    assert e.value.error_code == PF_P | PF_U


def test_supervisor_write_to_readonly_faults_only_with_cr0_wp() -> None:
    mem = Mem()
    four_level(mem, 0x400000, PTE_P)
    with pytest.raises(PageFault) as e:
        translate(LONG, 0x400000, mem.read, is_write=True)
    assert e.value.error_code == PF_P | PF_W
    no_wp = PagingRegs(CR0_PG | 1, 0x1000, CR4_PAE, EFER_LMA)
    assert translate(no_wp, 0x400000, mem.read, is_write=True).paddr == 0x200000


def test_fetch_from_nx_page_sets_instruction_bit() -> None:
    mem = Mem()
    four_level(mem, 0x400000, PTE_P | PTE_NX)
    with pytest.raises(PageFault) as e:
        translate(LONG, 0x400000, mem.read, is_fetch=True)
    assert e.value.error_code == PF_P | PF_I


def test_two_mib_page() -> None:
    mem = Mem()
    mem.cells[0x1000] = 0x2000 | PTE_P | PTE_W
    mem.cells[0x2000] = 0x3000 | PTE_P | PTE_W
    mem.cells[0x3000 + 8] = 0x4000_0000 | PTE_P | PTE_W | PTE_PS
    t = translate(LONG, 0x20_1234, mem.read)
    assert (t.paddr, t.page_size) == (0x4000_1234, 2 << 20)


def test_one_gib_page() -> None:
    mem = Mem()
    mem.cells[0x1000] = 0x2000 | PTE_P | PTE_W
    mem.cells[0x2000 + 8 * 2] = 0x4000_0000 | PTE_P | PTE_W | PTE_PS
    t = translate(LONG, 0x8000_1234, mem.read)
    assert (t.paddr, t.page_size) == (0x4000_1234, 1 << 30)


def test_accessed_and_dirty_bits_set_on_write() -> None:
    mem = Mem()
    four_level(mem, 0x400000, PTE_P | PTE_W)
    translate(LONG, 0x400000, mem.read, mem.write, is_write=True, set_ad=True)
    leaf = mem.cells[0x4000]
    assert leaf & PTE_A and leaf & PTE_D
    assert mem.cells[0x1000] & PTE_A and not mem.cells[0x1000] & PTE_D


def test_read_sets_accessed_but_not_dirty() -> None:
    mem = Mem()
    four_level(mem, 0x400000, PTE_P | PTE_W)
    translate(LONG, 0x400000, mem.read, mem.write, set_ad=True)
    assert mem.cells[0x4000] & PTE_A and not mem.cells[0x4000] & PTE_D


def test_legacy_32bit_4mib_page() -> None:
    mem = Mem()
    mem.cells[0x1000 + 4 * 2] = 0x0080_0000 | PTE_P | PTE_PS
    regs = PagingRegs(CR0_PG | 1, 0x1000, CR4_PSE, 0)
    assert translate(regs, 0x0080_0123, mem.read).paddr == 0x0080_0123


def test_pae_three_level() -> None:
    mem = Mem()
    mem.cells[0x1000 + 8 * 1] = 0x2000 | PTE_P
    mem.cells[0x2000] = 0x3000 | PTE_P | PTE_W
    mem.cells[0x3000 + 8 * 5] = 0x9000 | PTE_P
    regs = PagingRegs(CR0_PG | 1, 0x1000, CR4_PAE, 0)
    assert translate(regs, 0x4000_5123, mem.read).paddr == 0x9123

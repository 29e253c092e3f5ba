"""Guest page-table walker (Intel SDM vol 3A §4: paging).

Used to translate guest-virtual addresses for interrupt delivery (the IDT,
TSS and stacks are virtual), for the debugger, and to explain faults. It
covers 32-bit paging (4 KiB / 4 MiB pages), PAE paging and 4-level paging
(4 KiB / 2 MiB / 1 GiB pages), with the NX, U/S and R/W checks of §4.6 and
the error code of §4.7. When ``set_ad`` is true it sets the Accessed bit of
every entry used and the Dirty bit of the final entry on a write, exactly
like the CPU does for the access it is standing in for.

The walker reads and writes physical memory only through two callables, so
it is testable with a dict of page-table entries and no guest at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11

PTE_P = 1 << 0
PTE_W = 1 << 1
PTE_U = 1 << 2
PTE_A = 1 << 5
PTE_D = 1 << 6
PTE_PS = 1 << 7
PTE_NX = 1 << 63

# #PF error code bits (SDM vol 3A §4.7).
PF_P = 1 << 0
PF_W = 1 << 1
PF_U = 1 << 2
PF_RSVD = 1 << 3
PF_I = 1 << 4

_ADDR_MASK = 0x000F_FFFF_FFFF_F000  # bits 51:12 of a 64-bit entry


@dataclass(frozen=True, slots=True)
class PagingRegs:
    cr0: int
    cr3: int
    cr4: int
    efer: int

    @property
    def mode(self) -> str:
        if not self.cr0 & CR0_PG:
            return "off"
        if not self.cr4 & CR4_PAE:
            return "32-bit"
        return "4-level" if self.efer & EFER_LMA else "pae"


@dataclass(frozen=True, slots=True)
class Translation:
    paddr: int
    page_size: int
    writable: bool
    user: bool
    executable: bool


class PageFault(Exception):
    """The access would fault: ``vaddr`` goes to CR2, ``error_code`` is pushed."""

    def __init__(self, vaddr: int, error_code: int) -> None:
        self.vaddr = vaddr
        self.error_code = error_code
        kind = "protection violation" if error_code & PF_P else "page not present"
        super().__init__(f"page fault at {vaddr:#x}: {kind} (error code {error_code:#x})")


ReadEntry = Callable[[int, int], int]  # (paddr, size) -> value
WriteEntry = Callable[[int, int, int], None]  # (paddr, size, value)


def translate(
    regs: PagingRegs,
    vaddr: int,
    read: ReadEntry,
    write: WriteEntry | None = None,
    *,
    is_write: bool = False,
    is_user: bool = False,
    is_fetch: bool = False,
    set_ad: bool = False,
) -> Translation:
    """Translate ``vaddr`` or raise :class:`PageFault` with the CPU's error code."""
    mode = regs.mode
    if mode == "off":
        return Translation(vaddr & 0xFFFF_FFFF, 1 << 32, True, True, True)
    nxe = bool(regs.efer & EFER_NXE)
    if mode == "4-level":
        # Non-canonical addresses give #GP on hardware; the walker reports "not present".
        levels = [(39, 8, _ADDR_MASK), (30, 8, _ADDR_MASK), (21, 8, _ADDR_MASK), (12, 8, _ADDR_MASK)]
        table = regs.cr3 & _ADDR_MASK
        big = {30, 21}
    elif mode == "pae":
        vaddr &= 0xFFFF_FFFF
        # The 4 PDPTEs are 8-byte entries at CR3[31:5]; they have no R/W, U/S, A bits.
        levels = [(30, 8, _ADDR_MASK), (21, 8, _ADDR_MASK), (12, 8, _ADDR_MASK)]
        table = regs.cr3 & 0xFFFF_FFE0
        big = {21}
    else:
        vaddr &= 0xFFFF_FFFF
        levels = [(22, 4, 0xFFFF_F000), (12, 4, 0xFFFF_F000)]
        table = regs.cr3 & 0xFFFF_F000
        big = {22} if regs.cr4 & CR4_PSE else set()
        nxe = False

    base_err = (PF_W if is_write else 0) | (PF_U if is_user else 0) | (PF_I if is_fetch and nxe else 0)
    writable = user = executable = True
    used: list[tuple[int, int, int]] = []
    for i, (shift, esize, mask) in enumerate(levels):
        index_bits = 9 if esize == 8 else 10
        if mode == "pae" and i == 0:
            index_bits = 2
        index = (vaddr >> shift) & ((1 << index_bits) - 1)
        eaddr = table + index * esize
        entry = read(eaddr, esize)
        if not entry & PTE_P:
            raise PageFault(vaddr, base_err)
        pdpte = mode == "pae" and i == 0
        if not pdpte:
            writable &= bool(entry & PTE_W)
            user &= bool(entry & PTE_U)
            if nxe and entry & PTE_NX:
                executable = False
            used.append((eaddr, esize, entry))
        leaf = shift == 12 or (shift in big and entry & PTE_PS)
        if leaf:
            size = 1 << shift
            if shift == 22:  # 4 MiB page of 32-bit paging: bits 20:13 hold PA 39:32
                frame = (entry & 0xFFC0_0000) | ((entry >> 13) & 0xFF) << 32
            else:
                frame = entry & mask & ~(size - 1)
            paddr = frame | (vaddr & (size - 1))
            break
        table = entry & mask
    else:  # pragma: no cover - the last level is always a leaf
        raise AssertionError("walker fell off the last level")

    # Access rights (SDM vol 3A §4.6); supervisor writes honour CR0.WP.
    if is_user and not user:
        raise PageFault(vaddr, base_err | PF_P)
    if is_write and not writable and (is_user or regs.cr0 & CR0_WP):
        raise PageFault(vaddr, base_err | PF_P)
    if is_fetch and not executable:
        raise PageFault(vaddr, base_err | PF_P)

    if set_ad and write is not None:
        for n, (eaddr, esize, entry) in enumerate(used):
            new = entry | PTE_A
            if is_write and n == len(used) - 1:
                new |= PTE_D
            if new != entry:
                write(eaddr, esize, new)
    return Translation(paddr, size, writable, user, executable)

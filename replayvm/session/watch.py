"""Watchpoints on Unicorn's memory hooks, which see guest-physical addresses.

Unicorn 2.1 calls UC_HOOK_MEM_READ/WRITE hooks with the guest-physical
address of an access and checks each hook's range against it (cputlb.c,
``store_helper``: ``HOOK_BOUND_CHECK(hook, paddr)``), whatever virtual
address the instruction used. So:

* a *physical* watchpoint is a hook on its range: every CPU access to those
  bytes, through any mapping;
* a *virtual* watchpoint is kept on the physical bytes its pages map to now,
  the way a hypervisor's shadow page tables follow the guest's: the
  page-table entries of each walk are watched too, and a write to one of
  them walks again (with the value being written) and moves the hooks
  before the access it enables -- a demand-paged page is watched from the
  store that follows its fault. A hit is checked against the current
  address space (another CR3: walk again) and against the instruction's
  explicit memory operands (an access through another virtual mapping of
  the same bytes is not the watched address). While any virtual watchpoint
  is armed the vCPU ends its slice before the first block run in a new
  address space (``Vcpu.watch_address_space``: CR0, CR3, CR4 or EFER
  changed), and :meth:`WatchHooks.at_boundary` walks again there, so a CR3
  load is followed from the next instruction on. Left: accesses without an
  explicit operand (push, call, pushf...) through another mapping are
  reported too.

Hooks exist only while armed (a debugger command runs), so plain replay
keeps its speed: with any memory hook, every guest access takes Unicorn's
slow path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import capstone
from capstone import x86_const as cx
from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, Uc
from unicorn.x86_const import UC_X86_REG_FS_BASE, UC_X86_REG_GS_BASE, UC_X86_REG_RIP

from replayvm.engine.memory import PAGE_SIZE, GuestMemoryError
from replayvm.engine.paging import PageFault, PagingRegs, translate

OnHit = Callable[[int], None]  # watchpoint number
_HOOKS = {"write": (UC_HOOK_MEM_WRITE,), "read": (UC_HOOK_MEM_READ,), "access": (UC_HOOK_MEM_WRITE, UC_HOOK_MEM_READ)}


@dataclass(slots=True)
class _Piece:
    """The part of a virtual watchpoint inside one virtual page."""

    number: int
    vaddr: int
    length: int
    kind: str
    regs: PagingRegs | None = None
    paddr: int | None = None  # where it maps now (None: not mapped)
    data_hooks: list[int] = field(default_factory=list)
    entry_hooks: dict[tuple[int, int], int] = field(default_factory=dict)  # (paddr, size) of a walked entry


class WatchHooks:
    """The memory hooks of a set of watchpoints, armed until :meth:`disarm`."""

    def __init__(
        self,
        uc: Uc,
        paging_regs: Callable[[], PagingRegs],
        read_phys: Callable[[int, int], int],
        read_code: Callable[[int, int], bytes],
        on_hit: OnHit,
    ) -> None:
        self.uc = uc
        self._regs = paging_regs
        self._read_phys = read_phys
        self._read_code = read_code
        self._on_hit = on_hit
        self._handles: list[int] = []
        self._pieces: list[_Piece] = []

    def add_physical(self, number: int, paddr: int, length: int, kind: str) -> None:
        for hook in _HOOKS[kind]:
            self._handles.append(self.uc.hook_add(hook, self._on_physical, number, paddr, paddr + length - 1))

    def add_virtual(self, number: int, vaddr: int, length: int, kind: str) -> None:
        end = vaddr + length
        while vaddr < end:
            n = min(end, (vaddr | (PAGE_SIZE - 1)) + 1) - vaddr
            piece = _Piece(number, vaddr, n, kind)
            self._pieces.append(piece)
            self._resolve(piece)
            vaddr += n

    @property
    def follows_paging(self) -> bool:
        """Some watchpoint is virtual: it must follow the guest's address space."""
        return bool(self._pieces)

    def at_boundary(self) -> None:
        """Follow a new address space (CR3 or paging mode changed since the walk)."""
        regs = self._regs()
        for piece in self._pieces:
            if piece.regs != regs:
                self._resolve(piece, regs)

    def disarm(self) -> None:
        for handle in self._handles:
            self.uc.hook_del(handle)
        for piece in self._pieces:
            for handle in [*piece.data_hooks, *piece.entry_hooks.values()]:
                self.uc.hook_del(handle)
        self._handles.clear()
        self._pieces.clear()

    # -- virtual watchpoints: follow the page tables ---------------------------------------
    def _resolve(
        self, piece: _Piece, regs: PagingRegs | None = None, pending: tuple[int, int, int] | None = None
    ) -> None:
        """Walk the page tables for ``piece`` (with ``pending`` = a write of
        (paddr, size, value) about to happen) and put its hooks where the walk
        ends, plus write hooks on every entry the walk read. Called from hooks
        too: Unicorn's hook loop goes on over hooks added meanwhile, so a hook
        that stays is kept, never deleted and added again."""
        piece.regs = regs = regs or self._regs()
        entries: list[tuple[int, int]] = []

        def read(paddr: int, size: int) -> int:
            entries.append((paddr, size))
            value = self._read_phys(paddr, size)
            if pending is not None:
                value = _overlay(value, paddr, size, *pending)
            return value

        try:
            paddr: int | None = translate(regs, piece.vaddr, read).paddr
        except (PageFault, GuestMemoryError):
            paddr = None
        uc = self.uc
        for entry in [e for e in piece.entry_hooks if e not in entries]:
            uc.hook_del(piece.entry_hooks.pop(entry))
        for entry in entries:
            if entry not in piece.entry_hooks:
                first, size = entry
                piece.entry_hooks[entry] = uc.hook_add(
                    UC_HOOK_MEM_WRITE, self._on_entry_write, piece, first, first + size - 1
                )
        if paddr != piece.paddr or not piece.data_hooks:
            for handle in piece.data_hooks:
                uc.hook_del(handle)
            piece.data_hooks = []
            piece.paddr = paddr
            if paddr is not None:
                last = paddr + piece.length - 1
                piece.data_hooks = [
                    uc.hook_add(hook, self._on_virtual, piece, paddr, last) for hook in _HOOKS[piece.kind]
                ]

    def _on_entry_write(self, uc: Uc, access: int, address: int, size: int, value: int, piece: _Piece) -> None:
        self._resolve(piece, pending=(address, size, value))

    def _on_virtual(self, uc: Uc, access: int, address: int, size: int, value: int, piece: _Piece) -> None:
        regs = self._regs()
        if regs != piece.regs:  # another address space since the walk
            old = piece.paddr
            self._resolve(piece, regs)
            if piece.paddr is None or old is None or piece.paddr != old:
                return
        if regs.mode == "4-level" and self._explicit_operands_miss(piece):
            return
        self._on_hit(piece.number)

    def _on_physical(self, uc: Uc, access: int, address: int, size: int, value: int, number: int) -> None:
        self._on_hit(number)

    def _explicit_operands_miss(self, piece: _Piece) -> bool:
        """True when the accessing instruction's explicit memory operands all
        lie in other virtual pages: it reached these bytes through another
        mapping."""
        rip = self.uc.reg_read(UC_X86_REG_RIP)
        insn = next(_decoder().disasm(self._read_code(rip, 15), rip, 1), None)
        if insn is None:
            return False
        # Compared page by page: another mapping of the same bytes lies in
        # another virtual page, and an operand's size is not always known
        # (fxsave, xsave: taken as up to a page).
        vpage = piece.vaddr & ~(PAGE_SIZE - 1)
        explicit = False
        for op in insn.operands:
            if op.type != cx.X86_OP_MEM:
                continue
            ea = self._effective_address(insn, op.mem)
            if ea is None:
                return False
            explicit = True
            if ea & ~(PAGE_SIZE - 1) <= vpage <= (ea + (op.size or PAGE_SIZE) - 1) & ~(PAGE_SIZE - 1):
                return False
        return explicit  # no explicit operand: implicit accesses (stack...), kept

    def _effective_address(self, insn: capstone.CsInsn, mem: object) -> int | None:
        uc = self.uc
        ea = mem.disp  # type: ignore[attr-defined]
        for reg, scale in ((mem.base, 1), (mem.index, mem.scale)):  # type: ignore[attr-defined]
            if reg == cx.X86_REG_INVALID:
                continue
            if reg == cx.X86_REG_RIP:
                ea += insn.address + insn.size
                continue
            uc_reg = _UC_REGS.get(reg)
            if uc_reg is None:
                return None
            ea += uc.reg_read(uc_reg) * scale
        segment = mem.segment  # type: ignore[attr-defined]
        if segment == cx.X86_REG_FS:
            ea += uc.reg_read(UC_X86_REG_FS_BASE)
        elif segment == cx.X86_REG_GS:
            ea += uc.reg_read(UC_X86_REG_GS_BASE)
        return ea & 0xFFFF_FFFF_FFFF_FFFF


_DECODER: list[capstone.Cs] = []


def _decoder() -> capstone.Cs:
    if not _DECODER:
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        md.detail = True
        _DECODER.append(md)
    return _DECODER[0]


def _overlay(value: int, paddr: int, size: int, wpaddr: int, wsize: int, wvalue: int) -> int:
    """``value`` read at [paddr, paddr+size) with the pending write's bytes in place."""
    if wpaddr >= paddr + size or paddr >= wpaddr + wsize:
        return value
    data = bytearray(value.to_bytes(size, "little"))
    new = wvalue.to_bytes(wsize, "little")
    for i in range(wsize):
        at = wpaddr + i - paddr
        if 0 <= at < size:
            data[at] = new[i]
    return int.from_bytes(data, "little")


def _uc_registers() -> dict[int, int]:
    from unicorn import x86_const as ux

    table = {}
    for name in dir(cx):
        if not name.startswith("X86_REG_"):
            continue
        short = name[len("X86_REG_") :]
        uc_value = getattr(ux, f"UC_X86_REG_{short}", None)
        if uc_value is not None and short not in ("INVALID", "ENDING"):
            table[getattr(cx, name)] = uc_value
    return table


_UC_REGS = _uc_registers()

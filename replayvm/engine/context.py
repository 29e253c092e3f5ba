"""A saved CPU context whose hidden state can be read and patched.

``uc.context_save()`` copies QEMU's whole ``CPUX86State``. Registers go
through Unicorn's context accessors; what no register exposes (hflags, the
hidden parts of segment registers, the pending error code, old_exception) is
patched in the raw bytes at offsets found by :mod:`replayvm.engine.uc_abi`.
This is how the hypervisor enters 32-bit protected mode for PVH, changes
privilege level when it injects an event (``reg_write(CS)`` changes only the
selector), and clears QEMU's double-fault bookkeeping.
"""

from __future__ import annotations

import ctypes
import struct

from unicorn import Uc
from unicorn.unicorn_py3.unicorn import UcContext

from replayvm.engine.uc_abi import (
    HF_ADDSEG_MASK,
    HF_CPL_MASK,
    HF_CS32_MASK,
    HF_CS64_MASK,
    HF_LMA_MASK,
    HF_SS32_MASK,
    SEG_CS,
    SEG_ENTRY,
    SEG_SS,
    UcLayout,
)

# Descriptor flag bits as QEMU keeps them (the descriptor's high dword).
DESC_TYPE_A = 1 << 8
DESC_TYPE_RW = 1 << 9
DESC_TYPE_CODE = 1 << 11
DESC_S = 1 << 12
DESC_DPL_SHIFT = 13
DESC_P = 1 << 15
DESC_L = 1 << 21
DESC_B = 1 << 22
DESC_G = 1 << 23

FLAT_CODE32 = DESC_G | DESC_B | DESC_P | DESC_S | DESC_TYPE_CODE | DESC_TYPE_RW | DESC_TYPE_A
FLAT_DATA32 = DESC_G | DESC_B | DESC_P | DESC_S | DESC_TYPE_RW | DESC_TYPE_A
CODE64_RING0 = DESC_G | DESC_L | DESC_P | DESC_S | DESC_TYPE_CODE | DESC_TYPE_RW | DESC_TYPE_A
DATA_RING0 = DESC_G | DESC_B | DESC_P | DESC_S | DESC_TYPE_RW | DESC_TYPE_A


class CpuContext:
    def __init__(self, uc: Uc, layout: UcLayout) -> None:
        self.uc = uc
        self.layout = layout
        self.ctx: UcContext = uc.context_save()
        self.raw = (ctypes.c_char * layout.context_size).from_address(self.ctx.context.value)

    # -- registers ---------------------------------------------------------
    def reg(self, reg_id: int) -> object:
        """Read a register as saved. The context was saved from the live CPU and
        only this object edits it, so reads go to the live CPU (the binding's
        context accessors crash on table registers such as IDTR)."""
        return self.uc.reg_read(reg_id)

    def set_reg(self, reg_id: int, value: object) -> None:
        self.ctx.reg_write(reg_id, value)

    # -- hidden state --------------------------------------------------------
    @property
    def hflags(self) -> int:
        return struct.unpack_from("<I", self.raw, self.layout.hflags)[0]

    @hflags.setter
    def hflags(self, value: int) -> None:
        struct.pack_into("<I", self.raw, self.layout.hflags, value & 0xFFFFFFFF)

    @property
    def cpl(self) -> int:
        return self.hflags & HF_CPL_MASK

    @property
    def error_code(self) -> int:
        return struct.unpack_from("<i", self.raw, self.layout.error_code)[0] & 0xFFFFFFFF

    @property
    def exception_is_int(self) -> bool:
        return struct.unpack_from("<i", self.raw, self.layout.error_code + 4)[0] != 0

    def clear_old_exception(self) -> None:
        """Forget the exception in flight: Unicorn never delivers, so QEMU
        would otherwise turn the next contributory fault into #DF."""
        struct.pack_into("<i", self.raw, self.layout.old_exception, -1)

    def segment(self, seg: int) -> tuple[int, int, int, int]:
        return SEG_ENTRY.unpack_from(self.raw, self.layout.seg_offset(seg))

    def load_segment(self, seg: int, selector: int, base: int, limit: int, flags: int) -> None:
        """Load a segment register's visible and hidden parts, then recompute
        the hflags that depend on it as QEMU's cpu_x86_load_seg_cache does."""
        SEG_ENTRY.pack_into(self.raw, self.layout.seg_offset(seg), selector & 0xFFFF, base, limit, flags)
        h = self.hflags
        if seg == SEG_CS:
            if h & HF_LMA_MASK and flags & DESC_L:
                h |= HF_CS32_MASK | HF_SS32_MASK | HF_CS64_MASK
            else:
                h = (h & ~(HF_CS32_MASK | HF_CS64_MASK)) | (HF_CS32_MASK if flags & DESC_B else 0)
        if seg == SEG_SS:
            h = (h & ~HF_CPL_MASK) | ((flags >> DESC_DPL_SHIFT) & 3)
        if not h & HF_CS64_MASK:
            ss_flags = flags if seg == SEG_SS else self.segment(SEG_SS)[3]
            h = (h & ~HF_SS32_MASK) | (HF_SS32_MASK if ss_flags & DESC_B else 0)
        h &= ~HF_ADDSEG_MASK  # ReplayVM only loads flat (base 0) segments here
        self.hflags = h

    def restore(self) -> None:
        self.uc.context_restore(self.ctx)

"""What ReplayVM needs of Unicorn beyond its public Python API, found by calibration.

Unicorn 2.1 does not expose everything a hypervisor needs (DESIGN.md §3):

* how many instructions a slice executed when it stopped early (HLT, an
  emu_stop from a hook): Unicorn's internal ``emu_counter`` word in the
  ``uc_struct`` behind ``uc._uch``;
* CPU state that no register exposes: ``hflags`` (CPL, interrupt shadow,
  mode bits), the hidden part of segment registers, the pending exception's
  error code, and ``old_exception`` (QEMU's double-fault bookkeeping, which
  Unicorn never clears because it never delivers exceptions itself);
* hooks the binding rejects (RDTSC/RDTSCP), added through the C API.

None of these offsets is hard-coded as truth: :func:`layout` finds each one by
running tiny probes on a scratch engine and refuses to start (``EngineError``)
unless every probe finds exactly one candidate. A Unicorn update that moves a
field therefore fails loudly at start-up instead of corrupting guests.
"""

from __future__ import annotations

import ctypes
import functools
import struct
from dataclasses import dataclass

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_HOOK_INTR, UC_MODE_64, Uc
from unicorn.unicorn_py3.unicorn import uclib
from unicorn.x86_const import UC_X86_REG_CR0, UC_X86_REG_FS_BASE, UC_X86_REG_GS_BASE

from replayvm.errors import EngineError

# QEMU target/i386/cpu.h hflags bits (the subset ReplayVM reads or patches).
HF_CPL_MASK = 0x3
HF_INHIBIT_IRQ_MASK = 1 << 3
HF_CS32_MASK = 1 << 4
HF_SS32_MASK = 1 << 5
HF_ADDSEG_MASK = 1 << 6
HF_PE_MASK = 1 << 7
HF_TS_MASK = 1 << 11
HF_LMA_MASK = 1 << 14
HF_CS64_MASK = 1 << 15

# Segment cache order in CPUX86State.segs[].
SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS = range(6)
SEG_ENTRY = struct.Struct("<I4xQII")  # selector, base, limit, flags

_SCRATCH = 0x1000
_UNTIL_NEVER = 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class UcLayout:
    counter_word: int  # index of emu_counter among the u64 words of *uc._uch
    hflags: int  # byte offsets inside bytes(context_save())
    segs: int
    error_code: int
    old_exception: int
    context_size: int

    def seg_offset(self, seg: int) -> int:
        return self.segs + SEG_ENTRY.size * seg


def _words(uc: Uc, n: int) -> list[int]:
    p = ctypes.cast(uc._uch, ctypes.POINTER(ctypes.c_uint64))
    return [p[i] for i in range(n)]


def _unique(cands: set[int], what: str) -> int:
    if len(cands) != 1:
        raise EngineError(
            f"Unicorn calibration failed: {len(cands)} candidates for {what}; "
            "this Unicorn build is not one ReplayVM supports (need 2.1.x)"
        )
    return next(iter(cands))


def _i32_offsets(blob: bytes, value: int) -> set[int]:
    return {i for i in range(0, len(blob) - 3, 4) if struct.unpack_from("<i", blob, i)[0] == value}


def _find_counter_word() -> int:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, 0x10000)
    uc.mem_write(_SCRATCH, b"\x90" * 0x100)
    cands: set[int] | None = None
    for n in (3, 7, 11, 29):
        uc.emu_start(_SCRATCH, _UNTIL_NEVER, count=n)
        hits = {i for i, v in enumerate(_words(uc, 4096)) if v == n + 1}
        cands = hits if cands is None else cands & hits
    return _unique(cands or set(), "emu_counter")


def _find_context_offsets() -> UcLayout:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, 0x10000)

    # Segment bases: FS.base and GS.base are adjacent entries of segs[].
    a, b = 0x1122334455667788, 0x0102030405060708
    uc.reg_write(UC_X86_REG_FS_BASE, a)
    uc.reg_write(UC_X86_REG_GS_BASE, b)
    blob = bytes(uc.context_save())
    fs = {i for i in range(len(blob) - 8) if blob[i : i + 8] == a.to_bytes(8, "little")}
    gs = {i for i in range(len(blob) - 8) if blob[i : i + 8] == b.to_bytes(8, "little")}
    fs_base = _unique({i for i in fs if i + SEG_ENTRY.size in gs}, "segment cache")
    segs = fs_base - 8 - SEG_ENTRY.size * SEG_FS

    # hflags: toggling CR0.TS flips exactly HF_TS_MASK in one u32 word.
    cr0 = uc.reg_read(UC_X86_REG_CR0)
    before = bytes(uc.context_save())
    uc.reg_write(UC_X86_REG_CR0, cr0 | 8)
    after = bytes(uc.context_save())
    uc.reg_write(UC_X86_REG_CR0, cr0)
    flips = {
        i
        for i in range(0, len(before) - 3, 4)
        if struct.unpack_from("<I", before, i)[0] ^ struct.unpack_from("<I", after, i)[0] == HF_TS_MASK
    }
    hflags = _unique(flips, "hflags")

    # error_code / old_exception: #GP(0x1234) from loading a bad selector,
    # then `int 0x42`, which is not a contributory exception.
    seen: list[bytes] = []

    def on_intr(uc: Uc, intno: int, _ud: object) -> None:
        seen.append(bytes(uc.context_save()))
        uc.emu_stop()

    uc.hook_add(UC_HOOK_INTR, on_intr)
    uc.mem_write(0x2000, b"\x66\xb8\x34\x12\x8e\xd8")  # mov ax,0x1234; mov ds,ax
    uc.emu_start(0x2000, _UNTIL_NEVER, count=2)
    uc.mem_write(0x3000, b"\x66\xb8\x21\x43\xcd\x42")  # mov ax,0x4321; int 0x42
    uc.emu_start(0x3000, _UNTIL_NEVER, count=2)
    if len(seen) != 2:
        raise EngineError("Unicorn calibration failed: probe exceptions were not reported")
    gp, soft = seen
    # RAX (offset 0 of the context data) also holds the selector; exclude words
    # that equal the probe's RAX in the second probe too.
    error_code = _unique(
        _i32_offsets(gp, 0x1234) - _i32_offsets(soft, 0x4321) - _i32_offsets(soft, 0x1234), "error_code"
    )
    old_exc = _unique(_i32_offsets(gp, 13) & _i32_offsets(soft, 13), "old_exception")
    return UcLayout(0, hflags, segs, error_code, old_exc, len(blob))


@functools.cache
def layout() -> UcLayout:
    """Calibrate once per process (a few milliseconds)."""
    ctx = _find_context_offsets()
    return UcLayout(_find_counter_word(), ctx.hflags, ctx.segs, ctx.error_code, ctx.old_exception, ctx.context_size)


def counter_pointer(uc: Uc) -> ctypes._Pointer:
    """A pointer whose ``[layout().counter_word]`` is the live emu_counter."""
    return ctypes.cast(uc._uch, ctypes.POINTER(ctypes.c_uint64))


RAW_INSN_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def add_raw_insn_hook(uc: Uc, insn: int, callback: RAW_INSN_CB) -> int:
    """Add a UC_HOOK_INSN for an instruction the binding refuses (RDTSC/RDTSCP).

    The callback returns 1 to skip the real instruction. The caller must keep
    ``callback`` alive as long as ``uc``.
    """
    handle = ctypes.c_size_t()
    err = uclib.uc_hook_add(
        uc._uch,
        ctypes.byref(handle),
        UC_HOOK_INSN,
        ctypes.cast(callback, ctypes.c_void_p),
        None,
        ctypes.c_uint64(1),
        ctypes.c_uint64(0),
        ctypes.c_int(insn),
    )
    if err != 0:
        raise EngineError(f"Unicorn refused an instruction hook for insn {insn} (error {err})")
    return handle.value

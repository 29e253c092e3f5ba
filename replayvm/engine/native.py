"""The native counter: count mode's exact instruction counts at block speed (issue 9).

Count mode (:class:`~replayvm.engine.icount.CountModeCounter`) is exact but
makes Unicorn call a C callback before every instruction (5-10x slower than
free-running). :class:`NativeCounter` keeps its contract -- ``run(begin,
budget)``, ``in_slice()``, ``mark_stop()``/``stop_count`` give the numbers
count mode gives, in every case, so a recording made with one engine replays
with the other -- with one C callback per translation block, or, where
Unicorn's code buffer is writable (Unicorn 2.1 on Linux), with a countdown
written into each block's own code in place of that call (QEMU's icount
idea). The extension ``engine/_native/nativecount.c`` explains how each case
is made exact.

It reads a few QEMU structures inside Unicorn 2.1.x: the TranslationBlock
(instruction count, compile flags, per-instruction PCs), from the CPUState
``cflags_next_tb``, ``icount_decr``, ``env_ptr`` and ``mem_io_pc``, from the
CPU state ``eflags``, ``hflags``, ``cr[]`` and ``efer``, and the bounds of one of its own hooks.
As in :mod:`replayvm.engine.uc_abi`, nothing is assumed: :func:`native_layout`
finds and checks every offset with probes on scratch engines at first use
(~50 ms), and refuses (:class:`NativeUnavailable`) unless every probe
agrees -- :func:`replayvm.engine.icount.make_counter` then falls back to
count mode with a one-line notice.

Contract with the vCPU (what count mode needs, plus two rules):
* the counter is created before any other hook is added to the engine (its
  exception hooks must see RIP before the VMM delivers the exception);
* a hook that stops the slice calls ``mark_stop()`` (or sets ``stop_count``)
  before ``emu_stop()``; stops are exact from instruction hooks (IN, OUT,
  CPUID, RDTSC, SYSCALL...), code hooks, exception hooks and the interrupt
  window; a memory-hook stop ends the slice at the end of the block;
* no other UC_HOOK_BLOCK hook: use :meth:`NativeCounter.set_interrupt_window`
  for the interrupt window (a second block hook makes ``run`` raise
  ``EngineError`` rather than count wrong).

Count mode's numbers, measured on Unicorn 2.1.4 (tests/engine/test_native.py
checks each against this counter): ``in_slice()`` in a hook counts the
instructions started in the slice including the current one -- the faulting
instruction of a data fault, #DE or #UD (RIP at it), ``int n``/``int3`` (RIP
after it), the instruction of an IN/OUT/CPUID/RDTSC/MMIO/memory/code hook;
an instruction-fetch fault counts nothing (RIP at the target). HLT counts,
and a HLT as the budget's last instruction ends the slice "early". A rep
string instruction counts once per iteration plus once for the final RCX=0
check. A store into the running translation block counts twice (QEMU
abandons the block and re-executes the store alone), so such a store's
count depends on where slices end, and a one-instruction slice never gets
past it; the native counter reproduces this too.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

from unicorn import UC_ARCH_X86, UC_HOOK_BLOCK, UC_HOOK_INSN, UC_HOOK_INTR, UC_MODE_64, Uc
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TB_FLUSH
from unicorn.unicorn_py3.unicorn import uclib
from unicorn.x86_const import (
    UC_X86_INS_CPUID,
    UC_X86_REG_CR0,
    UC_X86_REG_CR3,
    UC_X86_REG_CR4,
    UC_X86_REG_R8,
    UC_X86_REG_R9,
    UC_X86_REG_R10,
    UC_X86_REG_R11,
    UC_X86_REG_R12,
    UC_X86_REG_R13,
    UC_X86_REG_R14,
    UC_X86_REG_R15,
    UC_X86_REG_RAX,
    UC_X86_REG_RBP,
    UC_X86_REG_RBX,
    UC_X86_REG_RCX,
    UC_X86_REG_RDI,
    UC_X86_REG_RDX,
    UC_X86_REG_RFLAGS,
    UC_X86_REG_RIP,
    UC_X86_REG_RSI,
    UC_X86_REG_RSP,
)

from replayvm.engine.uc_abi import layout as uc_layout
from replayvm.errors import EngineError

try:
    from replayvm.engine import _nativecount
except ImportError as e:  # built without a C compiler
    _nativecount = None
    _IMPORT_ERROR = str(e)
else:
    _IMPORT_ERROR = ""

UNTIL_NEVER = 0xFFFF_FFFF_FFFF_FFFF

# QEMU 5 (Unicorn 2.1.x) CPUState fields, relative to the CPUState (found through
# uc_struct.cpu, itself found by calibration); every one is checked by probes.
CPU_CFLAGS_NEXT_TB = 24
CPU_ENV_PTR = 296
CPU_ICOUNT_DECR_PTR = 304
CPU_MEM_IO_PC = 33144
ENV_EFLAGS = 136  # CPUX86State.eflags, after regs[16] and eip
CPU_SPAN = CPU_MEM_IO_PC + 64

REASON_NONE, REASON_LIMIT, REASON_USER, REASON_WINDOW, REASON_SPLIT, REASON_PAGING = 0, 1, 2, 3, 4, 5
MSR_EFER = 0xC000_0080

# Order of CPUX86State.regs[]: EAX ECX EDX EBX ESP EBP ESI EDI R8..R15.
_ENV_REGS = (
    UC_X86_REG_RAX,
    UC_X86_REG_RCX,
    UC_X86_REG_RDX,
    UC_X86_REG_RBX,
    UC_X86_REG_RSP,
    UC_X86_REG_RBP,
    UC_X86_REG_RSI,
    UC_X86_REG_RDI,
    UC_X86_REG_R8,
    UC_X86_REG_R9,
    UC_X86_REG_R10,
    UC_X86_REG_R11,
    UC_X86_REG_R12,
    UC_X86_REG_R13,
    UC_X86_REG_R14,
    UC_X86_REG_R15,
)


class NativeUnavailable(EngineError):
    """The native counter cannot run here (not built, or Unicorn differs)."""


@dataclass(frozen=True, slots=True)
class NativeLayout:
    cpu_word: int  # index of uc_struct.cpu among the u64 words of *uc._uch
    env_hflags: int  # CPUX86State.hflags, from the start of the CPU state
    env_cr: int  # CPUX86State.cr[5] (target_ulong cr[5]: CR0 at +0, CR3 at +24, CR4 at +32)
    env_efer: int  # CPUX86State.efer
    tb_align: int  # QEMU's icache line: TBs and their code are aligned to it
    tb_hdr: int  # distance from a TranslationBlock to its host code
    ra_lines: int  # how far back from a hook's return address the TB code may start
    patching: bool = False  # QEMU's code buffer is writable: TBs may count inline (nativecount.c, patch_tb)


# -- reading process memory safely during calibration ---------------------------------


def _mapped_readable(perms_wanted: str = "r") -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    with open("/proc/self/maps", encoding="ascii") as f:
        for line in f:
            addr, perms = line.split()[:2]
            if all(p in perms for p in perms_wanted):
                lo, hi = (int(x, 16) for x in addr.split("-"))
                if spans and spans[-1][1] == lo:
                    spans[-1] = (spans[-1][0], hi)  # adjacent mappings read as one
                else:
                    spans.append((lo, hi))
    return spans


def _readable(spans: list[tuple[int, int]], addr: int, n: int) -> bool:
    return any(lo <= addr and addr + n <= hi for lo, hi in spans)


def _u64(addr: int) -> int:
    return ctypes.c_uint64.from_address(addr).value


def _u32(addr: int) -> int:
    return ctypes.c_uint32.from_address(addr).value


def _fnptr(name: str) -> int:
    return ctypes.cast(getattr(uclib, name), ctypes.c_void_p).value or 0


def _exit_check_helper() -> int:
    """Unicorn's exit check after a block hook (0 if not exported: patched
    blocks then keep calling it)."""
    try:
        return _fnptr("helper_check_exit_request_x86_64")
    except AttributeError:
        return 0


def _cpu_candidates(uc: Uc, spans: list[tuple[int, int]]) -> list[int]:
    """u64 words of uc_struct that point to a CPUState whose env holds the registers."""
    magic = [0x5EED_0000_0000_0000 | (i * 0x1111_1111 + 7) for i in range(16)]
    for reg, value in zip(_ENV_REGS, magic):
        uc.reg_write(reg, value)
    base = uc._uch.value if hasattr(uc._uch, "value") else int(uc._uch)
    found = []
    if not _readable(spans, base, 8 * 256):
        return found
    for k in range(256):
        cpu = _u64(base + 8 * k)
        if cpu % 8 or not _readable(spans, cpu, CPU_SPAN):
            continue
        if _u32(cpu + CPU_CFLAGS_NEXT_TB) != 0xFFFF_FFFF:
            continue
        env = _u64(cpu + CPU_ENV_PTR)
        decr = _u64(cpu + CPU_ICOUNT_DECR_PTR)
        if not (_readable(spans, env, 8 * 16) and _readable(spans, decr, 4) and 0 < env - decr < 0x10000):
            continue
        if [_u64(env + 8 * i) for i in range(16)] != magic:
            continue
        uc.reg_write(UC_X86_REG_RFLAGS, 0x202)
        if_on = _u64(env + ENV_EFLAGS) & 0x200
        uc.reg_write(UC_X86_REG_RFLAGS, 0x2)
        if if_on and not _u64(env + ENV_EFLAGS) & 0x200:
            found.append(k)
    return found


def _uch(uc: Uc) -> int:
    h = uc._uch
    return h.value if hasattr(h, "value") else int(h)


def _cpu_of(uc: Uc, layout: NativeLayout) -> int:
    return _u64(_uch(uc) + 8 * layout.cpu_word)


def _make_c_counter(
    uc: Uc, layout: NativeLayout, cpu: int, *, mem_io_pc: bool = True, patching: bool = False
) -> object:
    assert _nativecount is not None
    return _nativecount.Counter(
        uc=_uch(uc),
        hook_add=_fnptr("uc_hook_add"),
        hook_del=_fnptr("uc_hook_del"),
        emu_stop=_fnptr("uc_emu_stop"),
        reg_read=_fnptr("uc_reg_read"),
        vmem_read=_fnptr("uc_vmem_read"),
        tb_align=layout.tb_align,
        tb_hdr=layout.tb_hdr,
        ra_lines=layout.ra_lines,
        icount_decr=_u64(cpu + CPU_ICOUNT_DECR_PTR),
        cflags_next_tb=cpu + CPU_CFLAGS_NEXT_TB,
        mem_io_pc=cpu + CPU_MEM_IO_PC if mem_io_pc else 0,
        eflags=_u64(cpu + CPU_ENV_PTR) + ENV_EFLAGS,
        hflags=_u64(cpu + CPU_ENV_PTR) + layout.env_hflags,
        cr=_u64(cpu + CPU_ENV_PTR) + layout.env_cr,
        efer=_u64(cpu + CPU_ENV_PTR) + layout.env_efer,
        ctl=_fnptr("uc_ctl"),
        ctl_tb_flush=(UC_CTL_IO_WRITE << 30) | UC_CTL_TB_FLUSH,
        patching=patching,
        env=_u64(cpu + CPU_ENV_PTR),
        exit_check=_exit_check_helper() if patching else 0,
    )


def _flush_tbs(uc: Uc) -> None:
    uc.ctl(UC_CTL_TB_FLUSH, UC_CTL_IO_WRITE)


# -- calibration probes ----------------------------------------------------------------

_PROBE = 0x1000
# block A: 5 x nop; jmp +0 (6 insns, 7 bytes) | block B: 3 x nop; hlt (4 insns)
_PROBE_TB = bytes.fromhex("9090909090eb00909090f4")
_PROBE_TB_EXPECT = [
    (0x1000, 7, [0x1000, 0x1001, 0x1002, 0x1003, 0x1004, 0x1005]),
    (0x1007, 4, [0x1007, 0x1008, 0x1009, 0x100A]),
]


def _scratch() -> Uc:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, 0x10000)
    uc.ctl_exits_enabled(True)
    uc.ctl_set_exits([])
    return uc


def _env_hflags(cpu_word: int) -> int:
    """uc_abi's hflags offset is into the context blob: find where the CPU
    state starts in it (the blob is a header and a copy of CPUX86State)."""
    uc = _scratch()
    uc.reg_write(UC_X86_REG_RAX, 0x1234_5678_9ABC_DEF0)
    env = _u64(_u64(_uch(uc) + 8 * cpu_word) + CPU_ENV_PTR)
    blob = bytes(uc.context_save())
    mem = ctypes.string_at(env, 512)
    headers = [h for h in range(0, 256, 8) if blob[h : h + 512] == mem]
    if len(headers) != 1:
        raise NativeUnavailable("native counter: Unicorn's CPU context is not laid out as expected")
    return uc_layout().hflags - headers[0]


def _env_paging(cpu_word: int) -> tuple[int, int]:
    """Where CPUX86State keeps cr[] and efer: the one u64 that follows CR3
    (and EFER) through two writes each, checked against CR0 and CR4."""
    uc = _scratch()
    env = _u64(_u64(_uch(uc) + 8 * cpu_word) + CPU_ENV_PTR)
    span = uc_layout().context_size

    def where(write: Callable[[int], None], read: Callable[[], int], values: tuple[int, ...]) -> set[int]:
        found: set[int] | None = None
        for value in values:
            write(value)
            now, mem = read(), ctypes.string_at(env, span)
            hits = {i for i in range(0, span - 7, 8) if int.from_bytes(mem[i : i + 8], "little") == now}
            found = hits if found is None else found & hits
        return found or set()

    cr3 = where(lambda v: uc.reg_write(UC_X86_REG_CR3, v), lambda: uc.reg_read(UC_X86_REG_CR3), (0x123000, 0x456000))
    efer = uc.msr_read(MSR_EFER)
    efers = where(lambda v: uc.msr_write(MSR_EFER, v), lambda: uc.msr_read(MSR_EFER), (efer ^ 0x800, efer ^ 0x801))
    if len(cr3) != 1 or len(efers) != 1:
        raise NativeUnavailable("native counter: Unicorn's CR3 and EFER are not laid out as expected")
    cr = next(iter(cr3)) - 24
    uc.reg_write(UC_X86_REG_CR4, 0x20)
    if _u64(env + cr) != uc.reg_read(UC_X86_REG_CR0) or _u64(env + cr + 32) != 0x20:
        raise NativeUnavailable("native counter: Unicorn's control registers are not laid out as expected")
    return cr, next(iter(efers))


def _calibrate_tb(cpu_word: int) -> NativeLayout:
    uc = _scratch()
    uc.mem_write(_PROBE, _PROBE_TB)
    cpu = _u64(_uch(uc) + 8 * cpu_word)
    env_hflags = _env_hflags(cpu_word)
    env_cr, env_efer = _env_paging(cpu_word)
    for align, hdr in ((64, 192), (128, 256), (32, 160), (256, 256)):
        layout = NativeLayout(cpu_word, env_hflags, env_cr, env_efer, align, hdr, 4)
        c = _make_c_counter(uc, layout, cpu)
        c.install()
        c.set_probe(True)
        _flush_tbs(uc)
        uc.emu_start(_PROBE, UNTIL_NEVER)
        records = c.probe_records()
        got = [(a, s, list(pcs) if pcs else None) for a, s, _tb, _n, _cf, pcs in records]
        c.set_probe(False)
        c.uninstall()
        if got == _PROBE_TB_EXPECT:
            # Inline counting rewrites TB code: only where QEMU's buffer is RWX.
            tb = records[0][2]
            return dataclasses.replace(layout, patching=_readable(_mapped_readable("rwx"), tb, 4096))
    raise NativeUnavailable("native counter: Unicorn's translation blocks are not laid out as expected")


def _both(layout: NativeLayout, code: bytes, budget: int, hook: Callable[[Uc, object, list], None]) -> list:
    """Run ``code`` with count mode and with the native counter; both results."""
    from replayvm.engine.icount import CountModeCounter

    results = []
    for make in (CountModeCounter, functools.partial(NativeCounter, layout=layout)):
        uc = _scratch()
        uc.mem_write(_PROBE, code)
        counter = make(uc)
        seen: list = []
        hook(uc, counter, seen)
        got = counter.run(_PROBE, budget)
        inexact = counter.stats()["inexact"] if isinstance(counter, NativeCounter) else 0
        results.append((got, counter.stop_count, uc.reg_read(UC_X86_REG_RIP), seen, inexact))
    return results


def _no_hook(uc: Uc, counter: object, seen: list) -> None:
    pass


def _cpuid_stop(uc: Uc, counter: object, seen: list) -> None:
    def on_cpuid(uc: Uc, _ud: object) -> int:
        seen.append(counter.in_slice())  # type: ignore[attr-defined]
        counter.mark_stop()  # type: ignore[attr-defined]
        uc.emu_stop()
        return 1

    uc.hook_add(UC_HOOK_INSN, on_cpuid, None, 1, 0, UC_X86_INS_CPUID)


def _divide_error(uc: Uc, counter: object, seen: list) -> None:
    def on_intr(uc: Uc, intno: int, _ud: object) -> None:
        seen.append((intno, counter.in_slice()))  # type: ignore[attr-defined]
        uc.reg_write(UC_X86_REG_RIP, uc.reg_read(UC_X86_REG_RIP) + 2)

    uc.hook_add(UC_HOOK_INTR, on_intr)


def _mmio(uc: Uc, counter: object, seen: list) -> None:
    def mmio_read(uc: Uc, offset: int, size: int, _ud: object) -> int:
        seen.append(counter.in_slice(mmio=True))  # type: ignore[attr-defined]
        return 0

    uc.mmio_map(0x20000, 0x1000, mmio_read, None, lambda *a: None, None)


# (what, code, budgets, hooks): each must give count mode's results.
_PROBES = (
    ("landing", b"\x90" * 10 + b"\xf4", (1, 3, 10, 11, 20), _no_hook),
    ("stop after CPUID", b"\x90\x0f\xa2\x90\x90\xf4", (100,), _cpuid_stop),
    ("exception", b"\x90\x31\xc9\xf7\xf1\x90\x90\xf4", (2, 3, 100), _divide_error),  # xor ecx,ecx; div ecx
    ("self-modifying code", bytes.fromhex("b09088050100000090cc90f4"), (1, 2, 3, 100), _no_hook),
    ("MMIO position", b"\x90\x90\x8b\x04\x25\x00\x00\x02\x00\x90\x8b\x04\x25\x04\x00\x02\x00\xf4", (100,), _mmio),
    # The same blocks again and again (the fast path, not only first runs).
    ("landing in a loop", bytes.fromhex("b9140000009090ffc975faf4"), (1, 2, 9, 30, 61, 100), _no_hook),
    ("MMIO in a loop", bytes.fromhex("b903000000908b04250000020090ffc975f3f4"), (100,), _mmio),
)


def _check_counting(layout: NativeLayout) -> None:
    """End-to-end probes against count mode: landing inside a block, a stop
    from an instruction hook in the middle of a block, an exception inside a
    block, a store into the running block, the position of an MMIO access."""
    for what, code, budgets, hook in _PROBES:
        for budget in budgets:
            count, native = _both(layout, code, budget, hook)
            if native != count:
                raise NativeUnavailable(f"native counter: {what} probe failed ({native} != {count})")


@functools.cache
def native_layout() -> NativeLayout:
    """Find and verify what the native counter needs (once per process), or
    raise :class:`NativeUnavailable` saying why not."""
    if _nativecount is None:
        raise NativeUnavailable(f"native counter not built ({_IMPORT_ERROR})")
    uc = _scratch()
    uc.reg_write(UC_X86_REG_RAX, 0)  # Unicorn creates its CPU on first use
    cands = _cpu_candidates(uc, _mapped_readable())
    if len(cands) != 1:
        raise NativeUnavailable(f"native counter: {len(cands)} candidates for Unicorn's CPU state (need 2.1.x)")
    layout = _calibrate_tb(cands[0])
    _check_counting(layout)
    return layout


def native_available() -> tuple[bool, str]:
    try:
        native_layout()
    except NativeUnavailable as e:
        return False, str(e)
    return True, ""


def add_noop_block_hook(uc: Uc) -> None:
    """Add a native UC_HOOK_BLOCK callback that does nothing (the benchmark's floor)."""
    if _nativecount is None:
        raise NativeUnavailable("native counter not built")
    handle = ctypes.c_size_t()
    err = uclib.uc_hook_add(
        ctypes.c_void_p(_uch(uc)),
        ctypes.byref(handle),
        UC_HOOK_BLOCK,
        ctypes.c_void_p(_nativecount.NOOP_BLOCK_HOOK),
        None,
        ctypes.c_uint64(1),
        ctypes.c_uint64(0),
    )
    if err != 0:
        raise EngineError(f"Unicorn refused the no-op block hook (error {err})")


class NativeCounter:
    """Drop-in replacement for CountModeCounter (same numbers, block speed)."""

    name = "native"

    def __init__(self, uc: Uc, layout: NativeLayout | None = None, *, patching: bool = True) -> None:
        """``patching`` (where Unicorn's code buffer is RWX): TBs count inline
        in their own code instead of calling the block hook (nativecount.c,
        patch_tb); ``patching=False`` keeps one hook call per block."""
        layout = layout or native_layout()
        patching = patching and layout.patching
        if getattr(uc, "_callbacks", None):
            raise EngineError("the native counter must be created before any hook is added to the engine")
        self.uc = uc
        uc.reg_read(UC_X86_REG_RIP)  # Unicorn creates its CPU on first use
        cpu = _cpu_of(uc, layout)
        if not _readable(_mapped_readable(), cpu, CPU_SPAN) or _u32(cpu + CPU_CFLAGS_NEXT_TB) != 0xFFFF_FFFF:
            raise NativeUnavailable("native counter: unexpected Unicorn CPU state")
        old = getattr(uc, "_replayvm_native", None)
        if old is not None:
            old.uninstall()
        self._c = _make_c_counter(uc, layout, cpu, patching=patching)
        self._c.install()
        # The C object must live as long as the engine that calls it.
        uc._replayvm_native = self._c  # type: ignore[attr-defined]
        _flush_tbs(uc)  # every TB must carry the block hook
        self._stop_count: int | None = None
        self.window_stop = False

    def in_slice(self, mmio: bool = False) -> int:
        """Instructions started in the running slice, including the current one
        (``mmio``: called from an MMIO callback, where RIP is stale)."""
        return self._c.in_slice(mmio)

    def mark_stop(self, mmio: bool = False) -> None:
        """Called by a hook that calls emu_stop: the slice ends after this instruction."""
        n = self._c.mark_stop(mmio)
        if self._stop_count is None:
            self._stop_count = n

    @property
    def stop_count(self) -> int | None:
        """Where a hook ended the slice (set by mark_stop, or by a hook directly)."""
        return self._stop_count

    @stop_count.setter
    def stop_count(self, n: int | None) -> None:
        self._stop_count = n
        if n is not None:
            self._c.set_stop_count(n)  # the blocks still entered before the stop must not count

    def run(self, begin: int, budget: int) -> tuple[int, bool]:
        """Run up to ``budget`` instructions from ``begin``: (executed, ended_early),
        exactly as :meth:`CountModeCounter.run`."""
        if budget < 1:
            raise ValueError(f"slice budget must be positive, not {budget}")
        self._stop_count = None
        self.window_stop = False
        c, uc = self._c, self.uc
        inexact = c.inexact()
        c.begin(budget)
        try:
            uc.emu_start(begin, UNTIL_NEVER)
            executed, reason = c.end()
            while reason == REASON_SPLIT:
                # A block holds instructions that may stop the slice without an
                # exit check after them: add the checks, retranslate, go on.
                c.apply_splits()
                _flush_tbs(uc)
                c.resume()
                uc.emu_start(uc.reg_read(UC_X86_REG_RIP), UNTIL_NEVER)
                executed, reason = c.end()
        finally:
            c.end()
        if self._c.inexact() != inexact:
            raise EngineError(
                "native counter: this slice could not be counted exactly (is another UC_HOOK_BLOCK hook "
                "installed? use the count engine, or the counter's set_interrupt_window)"
            )
        if reason == REASON_WINDOW:
            self.window_stop = True
            self._stop_count = executed
        elif reason == REASON_PAGING:
            self._stop_count = executed
        if self.stop_count is not None:  # a hook stopped the slice (mark_stop or set directly)
            return self.stop_count, True
        if reason == REASON_LIMIT:
            return executed, False
        return executed, True

    def set_interrupt_window(self, armed: bool) -> None:
        """While armed, the slice ends before the first block entered with
        RFLAGS.IF=1 (``stop_count`` = instructions before it, ``window_stop``
        set): what a UC_HOOK_BLOCK callback does in count mode, in C."""
        self._c.set_window(armed)

    def set_paging_watch(self, armed: bool) -> None:
        """While armed, the slice ends before the first block entered with
        another CR0, CR3, CR4 or EFER than the slice began with (``stop_count``
        = instructions before it): a debugger follows the new address space
        from its first instruction."""
        self._c.set_paging_watch(armed)

    def stats(self) -> dict[str, int]:
        """window_stops, paging_stops, slow_blocks, landings, splits, smc, scans, fallbacks, inexact, scan_failures, skipped."""
        return self._c.stats()

    def close(self) -> None:
        """Remove the hooks (the engine keeps running, uncounted)."""
        self._c.uninstall()

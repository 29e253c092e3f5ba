"""One x86-64 virtual CPU on Unicorn: slices, exits, event injection.

The vCPU runs the guest in count-limited slices (DESIGN.md §1, §3). It owns
the Unicorn instance, guest RAM mapping and every hook; the platform (the
machine) supplies port I/O and MMIO handlers and decides what to do at each
slice-ending exit. Synchronous exits are handled inline and counted:

* IN/OUT -> ``pio_read``/``pio_write`` of the platform (IO_INSTRUCTION);
* CPUID -> the VMM's :class:`CpuidModel` (CPUID);
* RDTSC/RDTSCP -> virtual time, via a raw C-API hook (RDTSC; an unhooked
  RDTSC would leak host time into the guest);
* SYSCALL -> emulated (Unicorn does not execute it);
* exceptions and ``int n`` (UC_HOOK_INTR) and #UD (UC_HOOK_INSN_INVALID) ->
  delivered through the guest IDT (EXCEPTION).

Virtual time (ns) = instructions executed + idle time skipped in HLT; the TSC
runs at 1 GHz, so TSC = virtual time.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from collections.abc import Callable

from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_BLOCK,
    UC_HOOK_INSN,
    UC_HOOK_INSN_INVALID,
    UC_HOOK_INTR,
    UC_MODE_64,
    UC_PROT_ALL,
    Uc,
    UcError,
)
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TB_FLUSH, UC_CTL_TLB_FLUSH
from unicorn.x86_const import (
    UC_X86_INS_CPUID,
    UC_X86_INS_IN,
    UC_X86_INS_OUT,
    UC_X86_INS_RDTSC,
    UC_X86_INS_RDTSCP,
    UC_X86_INS_SYSCALL,
    UC_X86_REG_CR0,
    UC_X86_REG_CR2,
    UC_X86_REG_CR3,
    UC_X86_REG_CR4,
    UC_X86_REG_CS,
    UC_X86_REG_DS,
    UC_X86_REG_ES,
    UC_X86_REG_FS,
    UC_X86_REG_FS_BASE,
    UC_X86_REG_GDTR,
    UC_X86_REG_GS,
    UC_X86_REG_GS_BASE,
    UC_X86_REG_IDTR,
    UC_X86_REG_MSR,
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
    UC_X86_REG_SS,
    UC_X86_REG_TR,
)

from replayvm.engine import icount as icount_module
from replayvm.engine.context import CODE64_RING0, DATA_RING0, FLAT_CODE32, FLAT_DATA32, CpuContext
from replayvm.engine.cpuid import CpuidModel
from replayvm.engine.exits import ExitReason, ExitStats
from replayvm.engine.icount import make_counter
from replayvm.engine.interrupts import (
    GP,
    PF,
    UD,
    VECTORS_WITH_ERROR_CODE,
    Event,
    Injector,
    TripleFault,
)
from replayvm.engine.memory import GuestRam
from replayvm.engine.paging import PageFault as PageFaultError
from replayvm.engine.paging import PagingRegs
from replayvm.engine.uc_abi import (
    HF_CPL_MASK,
    HF_CS32_MASK,
    HF_CS64_MASK,
    HF_INHIBIT_IRQ_MASK,
    HF_LMA_MASK,
    HF_PE_MASK,
    HF_SS32_MASK,
    RAW_INSN_CB,
    SEG_CS,
    SEG_DS,
    SEG_ES,
    SEG_FS,
    SEG_GS,
    SEG_SS,
    add_raw_insn_hook,
    layout,
)
from replayvm.errors import GuestError

MSR_EFER = 0xC0000080
MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_FMASK = 0xC0000084
MSR_TSC_AUX = 0xC0000103
MSR_IA32_MISC_ENABLE = 0x1A0
MISC_ENABLE_FAST_STRING = 1 << 0
EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
CR0_PE, CR0_ET, CR0_NE, CR0_PG = 1 << 0, 1 << 4, 1 << 5, 1 << 31
CR4_PAE = 1 << 5

RFLAGS_IF = 1 << 9

GPRS = (
    UC_X86_REG_RAX,
    UC_X86_REG_RBX,
    UC_X86_REG_RCX,
    UC_X86_REG_RDX,
    UC_X86_REG_RSI,
    UC_X86_REG_RDI,
    UC_X86_REG_RBP,
    UC_X86_REG_RSP,
    UC_X86_REG_R8,
    UC_X86_REG_R9,
    UC_X86_REG_R10,
    UC_X86_REG_R11,
    UC_X86_REG_R12,
    UC_X86_REG_R13,
    UC_X86_REG_R14,
    UC_X86_REG_R15,
    UC_X86_REG_RIP,
    UC_X86_REG_RFLAGS,
)
GPR_NAMES = (
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
    "rflags",
)
_SYSTEM_REGS = (
    UC_X86_REG_CS,
    UC_X86_REG_SS,
    UC_X86_REG_DS,
    UC_X86_REG_ES,
    UC_X86_REG_FS,
    UC_X86_REG_GS,
    UC_X86_REG_FS_BASE,
    UC_X86_REG_GS_BASE,
    UC_X86_REG_CR0,
    UC_X86_REG_CR2,
    UC_X86_REG_CR3,
    UC_X86_REG_CR4,
)
_SYSTEM_NAMES = ("cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base", "cr0", "cr2", "cr3", "cr4")
_DIGEST_REGS = GPRS + _SYSTEM_REGS
_REG_BY_NAME = dict(zip(GPR_NAMES, GPRS)) | {"eflags": UC_X86_REG_RFLAGS, "pc": UC_X86_REG_RIP, "sp": UC_X86_REG_RSP}

PioRead = Callable[[int, int], int]
PioWrite = Callable[[int, int, int], None]


class Vcpu:
    def __init__(
        self,
        ram: GuestRam,
        *,
        pio_read: PioRead,
        pio_write: PioWrite,
        cpuid: CpuidModel | None = None,
        engine: str | None = None,
    ) -> None:
        self.layout = layout()
        self.ram = ram
        self.cpuid = cpuid or CpuidModel()
        self.stats = ExitStats()
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.uc.mem_map_ptr(0, ram.size, UC_PROT_ALL, ram.address)
        # Use an explicit (empty) exit set instead of emu_start's `until`:
        # emu_start otherwise invalidates the TB at `until` by translating it
        # through the guest's page tables, and a failed walk leaves a phantom
        # #PF behind (CR2 = until-1, QEMU's old_exception = 14), which turns
        # the guest's next real #PF into #DF or swallows it.
        self.uc.ctl_exits_enabled(True)
        self.uc.ctl_set_exits([])
        # The counting strategy (icount.py): "native" (a C block hook, issue 9) or
        # "count" (Unicorn's count mode); both give the same icount everywhere.
        self.counter = make_counter(self.uc, engine or icount_module.DEFAULT_ENGINE)
        self.injector = Injector(ram)
        self._pio_read = pio_read
        self._pio_write = pio_write
        self.icount = 0  # instructions executed before the current slice
        self.idle_ns = 0  # virtual time skipped while halted
        self._in_slice = False
        self._in_mmio = False  # inside an MMIO callback: RIP is stale there
        self.stop_reason: ExitReason | None = None
        self._pending_fault: tuple[Event, int] | None = None
        self.last_exception: tuple[int, int] | None = None  # (vector, RIP) of the newest one
        self._window_hook: int | None = None
        self._paging_hook: int | None = None  # count engine: watch_address_space's block hook
        self._paging_seen: PagingRegs | None = None
        self.stop_message = ""
        self.tsc_offset = 0
        # Reset value as QEMU and firmware leave it: fast string operations on
        # (Unicorn starts at 0, and Linux then prints "Disabled fast string operations").
        self.uc.reg_write(UC_X86_REG_MSR, (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING))
        self._install_hooks()

    # -- time ------------------------------------------------------------------
    def current_icount(self) -> int:
        """Exact instruction count, also inside a hook (counts the current instruction)."""
        if self._in_slice:
            return self.icount + self.counter.in_slice(self._in_mmio)
        return self.icount

    def now(self) -> int:
        """Virtual time in ns: what every device clock and the TSC read."""
        return self.current_icount() + self.idle_ns

    # -- hooks -------------------------------------------------------------------
    def _install_hooks(self) -> None:
        uc = self.uc
        uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INSN, self._on_cpuid, None, 1, 0, UC_X86_INS_CPUID)
        uc.hook_add(UC_HOOK_INSN, self._on_syscall, None, 1, 0, UC_X86_INS_SYSCALL)
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        uc.hook_add(UC_HOOK_INSN_INVALID, self._on_invalid)
        # The binding refuses RDTSC/RDTSCP hooks; keep the C callbacks alive with the vCPU.
        self._rdtsc_cb = RAW_INSN_CB(self._guard(self._on_rdtsc))
        self._rdtscp_cb = RAW_INSN_CB(self._guard(self._on_rdtscp))
        add_raw_insn_hook(uc, UC_X86_INS_RDTSC, self._rdtsc_cb)
        add_raw_insn_hook(uc, UC_X86_INS_RDTSCP, self._rdtscp_cb)

    def _guard(self, fn: Callable[[], int]) -> Callable[[object, object], int]:
        """Raw callbacks bypass the binding's exception guard: re-create it."""
        uc = self.uc

        def wrapper(_uch: object, _ud: object) -> int:
            try:
                return fn()
            except BaseException as e:  # noqa: BLE001 - re-raised by emu_start, as the binding does
                if uc._hook_exception is None:
                    uc._hook_exception = e
                uc.emu_stop()
                return 1

        return wrapper

    def _on_in(self, uc: Uc, port: int, size: int, _ud: object) -> int:
        self.stats.by_reason["io"] += 1
        self.stats.io_ports[port] += 1
        mask = (1 << (8 * size)) - 1
        if uc.reg_read(UC_X86_REG_CS) & 3 and not self._io_allowed(port, size):
            return uc.reg_read(UC_X86_REG_RAX) & mask  # leave the destination as it was
        return self._pio_read(port, size) & mask

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _ud: object) -> None:
        self.stats.by_reason["io"] += 1
        self.stats.io_ports[port] += 1
        if uc.reg_read(UC_X86_REG_CS) & 3 and not self._io_allowed(port, size):
            return
        self._pio_write(port, size, value & ((1 << (8 * size)) - 1))

    def _io_allowed(self, port: int, size: int) -> bool:
        """I/O permission outside ring 0 (Intel SDM vol 1 §19.5): CPL <= IOPL, or
        every port's bit clear in the TSS I/O bitmap. When denied, the access is
        dropped and #GP(0) is raised on the IN/OUT instruction once it retires:
        Unicorn ignores RIP changes made inside I/O hooks."""
        uc = self.uc
        cpl = uc.reg_read(UC_X86_REG_CS) & 3
        if cpl <= (uc.reg_read(UC_X86_REG_RFLAGS) >> 12) & 3:
            return True
        try:
            paging = self.paging_regs()
            _, tss, limit, _ = uc.reg_read(UC_X86_REG_TR)
            if limit >= 0x67:
                base = self.injector.read_virtual(paging, tss + 0x66, 2)
                first, last = base + port // 8, base + (port + size - 1) // 8
                if last + 1 <= limit:  # the byte after the bitmap must be inside the TSS too
                    bits = self.injector.read_virtual(paging, tss + first, last - first + 1)
                    if not (bits >> (port % 8)) & ((1 << size) - 1):
                        return True
        except GuestError:
            pass
        self._pending_fault = (Event(GP, 0), uc.reg_read(UC_X86_REG_RIP))
        self.kick()
        return False

    def _on_cpuid(self, uc: Uc, _ud: object) -> int:
        self.stats.by_reason["cpuid"] += 1
        leaf = uc.reg_read(UC_X86_REG_RAX) & 0xFFFFFFFF
        sub = uc.reg_read(UC_X86_REG_RCX) & 0xFFFFFFFF
        a, b, c, d = self.cpuid.query(leaf, sub)
        uc.reg_write(UC_X86_REG_RAX, a)
        uc.reg_write(UC_X86_REG_RBX, b)
        uc.reg_write(UC_X86_REG_RCX, c)
        uc.reg_write(UC_X86_REG_RDX, d)
        return 1  # skip Unicorn's own CPUID

    def tsc(self) -> int:
        return (self.now() + self.tsc_offset) & 0xFFFF_FFFF_FFFF_FFFF

    def _on_rdtsc(self) -> int:
        self.stats.by_reason["rdtsc"] += 1
        t = self.tsc()
        self.uc.reg_write(UC_X86_REG_RAX, t & 0xFFFFFFFF)
        self.uc.reg_write(UC_X86_REG_RDX, t >> 32)
        return 1

    def _on_rdtscp(self) -> int:
        self._on_rdtsc()
        self.uc.reg_write(UC_X86_REG_RCX, self.uc.reg_read(UC_X86_REG_MSR, MSR_TSC_AUX) & 0xFFFFFFFF)
        return 1

    def _on_syscall(self, uc: Uc, _ud: object) -> None:
        """SYSCALL (Intel SDM vol 2B): Unicorn only advances RIP by 2 after this hook."""
        self.stats.by_reason["syscall"] += 1
        rip = uc.reg_read(UC_X86_REG_RIP)
        efer = uc.reg_read(UC_X86_REG_MSR, MSR_EFER)
        if not efer & EFER_SCE:
            # Unicorn adds 2 to RIP after this hook: aim 2 bytes before the handler.
            self._deliver_in_hook(CpuContext(uc, self.layout), Event(UD), rip, rip_adjust=-2)
            return
        star = uc.reg_read(UC_X86_REG_MSR, MSR_STAR)
        lstar = uc.reg_read(UC_X86_REG_MSR, MSR_LSTAR)
        fmask = uc.reg_read(UC_X86_REG_MSR, MSR_FMASK)
        ctx = CpuContext(uc, self.layout)
        rflags = ctx.reg(UC_X86_REG_RFLAGS)
        ctx.set_reg(UC_X86_REG_RCX, (rip + 2) & 0xFFFF_FFFF_FFFF_FFFF)
        ctx.set_reg(UC_X86_REG_R11, rflags)
        ctx.set_reg(UC_X86_REG_RFLAGS, rflags & ~fmask & ~(1 << 16))
        ctx.set_reg(UC_X86_REG_RIP, (lstar - 2) & 0xFFFF_FFFF_FFFF_FFFF)
        sel = (star >> 32) & 0xFFFC
        ctx.load_segment(SEG_CS, sel, 0, 0xFFFFFFFF, CODE64_RING0)
        ctx.load_segment(SEG_SS, sel + 8, 0, 0xFFFFFFFF, DATA_RING0)
        ctx.restore()

    def _on_intr(self, uc: Uc, intno: int, _ud: object) -> None:
        rip = uc.reg_read(UC_X86_REG_RIP)
        ctx = CpuContext(uc, self.layout)
        if ctx.exception_is_int:
            int3 = intno == 3 and self._byte_before(rip) == 0xCC
            event = Event(intno, None, "software", insn_len=1 if int3 else 2)
        elif intno == PF:
            event = Event(PF, ctx.error_code, "exception", uc.reg_read(UC_X86_REG_CR2))
        elif intno in VECTORS_WITH_ERROR_CODE:
            event = Event(intno, ctx.error_code)
        else:
            event = Event(intno)
        self._deliver_in_hook(ctx, event, rip)

    def _byte_before(self, rip: int) -> int | None:
        try:
            return self.injector.read_virtual(self.paging_regs(), rip - 1, 1)
        except (GuestError, PageFaultError):
            return None

    def _on_invalid(self, uc: Uc, _ud: object) -> bool:
        self._deliver_sync(Event(UD), uc.reg_read(UC_X86_REG_RIP))
        return True

    def _deliver_sync(self, event: Event, rip: int) -> None:
        self._deliver_in_hook(CpuContext(self.uc, self.layout), event, rip)

    def _deliver_in_hook(self, ctx: CpuContext, event: Event, rip: int, rip_adjust: int = 0) -> None:
        self.stats.by_reason["exception"] += 1
        self.stats.exceptions[event.vector] += 1
        self.last_exception = (event.vector, rip)
        try:
            handler = self.injector.inject(ctx, self.paging_regs(), event, rip)
        except TripleFault as e:
            ctx.clear_old_exception()
            ctx.restore()
            self.request_stop(ExitReason.SHUTDOWN, f"{e} (icount {self.current_icount()})")
            return
        if rip_adjust:
            ctx.set_reg(UC_X86_REG_RIP, (handler + rip_adjust) & 0xFFFF_FFFF_FFFF_FFFF)
        ctx.restore()

    def map_mmio(self, base: int, size: int, read: PioRead, write: PioWrite) -> None:
        """Map a device window (VM exit MMIO, KVM's EPT violation) at guest-physical
        ``base``. ``read(offset, size)``/``write(offset, size, value)`` get offsets
        within the window. Unicorn splits accesses wider than 4 bytes and keeps
        RIP stale in the callback; a callback must never stop the slice, or
        Unicorn replays the access (DESIGN.md §3)."""
        if base % 0x1000 or size <= 0 or size % 0x1000 or base < self.ram.size:
            raise ValueError(f"MMIO window {base:#x}+{size:#x} must be page-aligned and above RAM")
        stats = self.stats

        def on_read(uc: Uc, offset: int, width: int, _ud: object) -> int:
            stats.by_reason["mmio"] += 1
            stats.mmio_pages[base + (offset & ~0xFFF)] += 1
            self._in_mmio = True
            try:
                return read(offset, width) & ((1 << (8 * width)) - 1)
            finally:
                self._in_mmio = False

        def on_write(uc: Uc, offset: int, width: int, value: int, _ud: object) -> None:
            stats.by_reason["mmio"] += 1
            stats.mmio_pages[base + (offset & ~0xFFF)] += 1
            self._in_mmio = True
            try:
                write(offset, width, value & ((1 << (8 * width)) - 1))
            finally:
                self._in_mmio = False

        self.uc.mmio_map(base, size, on_read, None, on_write, None)

    # -- stopping ----------------------------------------------------------------
    def request_stop(self, reason: ExitReason, message: str = "") -> None:
        """From inside a hook: end the slice right after the current instruction."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_message = message
        self.counter.mark_stop(self._in_mmio)
        self.uc.emu_stop()

    def debug_stop(self, executed: int) -> None:
        """From a debugger hook: end the slice after ``executed`` instructions of it
        (before the hooked instruction for a breakpoint, after it for a
        watchpoint). Such a boundary is not one the guest made (exit DEBUG)."""
        if self.stop_reason is None:
            self.stop_reason = ExitReason.DEBUG
        if self.counter.stop_count is None:
            self.counter.stop_count = executed
        self.uc.emu_stop()

    def save_state(self) -> dict[str, object]:
        """CPU context (incl. hidden state), time and exit counters: plain data."""
        return {
            "context": bytes(self.uc.context_save()),
            "icount": self.icount,
            "idle_ns": self.idle_ns,
            "tsc_offset": self.tsc_offset,
            "last_exception": list(self.last_exception) if self.last_exception else None,
            "stats": {
                name: dict(getattr(self.stats, name))
                for name in ("by_reason", "io_ports", "mmio_pages", "exceptions", "interrupts")
            },
        }

    def load_state(self, state: dict[str, object]) -> None:
        blob = state["context"]
        assert isinstance(blob, bytes) and len(blob) == self.layout.context_size
        ctx = self.uc.context_save()
        ctypes.memmove(ctx.context.value, blob, len(blob))
        self.uc.context_restore(ctx)
        self.icount = int(state["icount"])  # type: ignore[call-overload]
        self.idle_ns = int(state["idle_ns"])  # type: ignore[call-overload]
        self.tsc_offset = int(state["tsc_offset"])  # type: ignore[call-overload]
        last = state.get("last_exception")
        self.last_exception = (int(last[0]), int(last[1])) if last else None  # type: ignore[index]
        stats = state["stats"]
        assert isinstance(stats, dict)
        for name, values in stats.items():
            counter = getattr(self.stats, name)
            counter.clear()
            counter.update(values)
        self.flush_code()

    def kick(self) -> None:
        """From inside a hook: end the slice so the run loop looks again (e.g. an IRQ rose)."""
        self.counter.mark_stop()
        self.uc.emu_stop()

    # -- running -----------------------------------------------------------------
    def run(self, budget: int) -> ExitReason:
        """Run one slice of at most ``budget`` instructions; return why it ended."""
        self.stop_reason = None
        self._pending_fault = None
        self._in_slice = True
        rip = self.uc.reg_read(UC_X86_REG_RIP)
        if self._paging_hook is not None:
            self._paging_seen = self.paging_regs()
        try:
            executed, early = self.counter.run(rip, budget)
            if getattr(self.counter, "window_stop", False):
                self.stats.by_reason["interrupt-window"] += 1
        except UcError as e:
            executed = self.counter.in_slice()
            self._in_slice = False
            self.icount += executed
            raise GuestError(
                f"guest stopped by the CPU engine at icount {self.icount}, RIP {self.rip:#x}: {e}"
            ) from None
        finally:
            self._in_slice = False
        self.icount += executed
        if self._pending_fault is not None:
            event, rip = self._pending_fault
            self._pending_fault = None
            self._deliver_sync(event, rip)
            if self.stop_reason is None:
                return ExitReason.INTERRUPT_WINDOW
        if self.stop_reason is not None:
            self.stats.by_reason[self.stop_reason.value] += 1
            return self.stop_reason
        if early and self.counter.stop_count is None:
            self.stats.by_reason["hlt"] += 1
            return ExitReason.HLT
        if early:
            return ExitReason.INTERRUPT_WINDOW  # kicked: an interrupt may be deliverable
        self.stats.by_reason["slice-end"] += 1
        return ExitReason.SLICE_END

    def flush_code(self) -> None:
        """After the host wrote guest RAM that may hold code or page tables."""
        self.uc.ctl(UC_CTL_TB_FLUSH, UC_CTL_IO_WRITE)
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    # -- interrupts between slices -------------------------------------------------
    def interrupt_shadow(self) -> bool:
        """IF=1 but the next instruction is in an STI/MOV SS shadow (SDM vol 3A §6.8.3)."""
        if not self.uc.reg_read(UC_X86_REG_RFLAGS) & RFLAGS_IF:
            return False
        return bool(CpuContext(self.uc, self.layout).hflags & HF_INHIBIT_IRQ_MASK)

    def arm_interrupt_window(self) -> None:
        """While an interrupt waits for IF=1: a block hook ends the slice at the
        first block that starts with IF=1. Every instruction that can set IF
        (STI, POPF, IRETQ, SYSRET...) ends its block in QEMU's translator, so
        the stop lands right after it whatever the block layout."""
        if hasattr(self.counter, "set_interrupt_window"):  # the native counter checks it in C
            self.counter.set_interrupt_window(True)
        else:
            self._window_hook = self._block_hook(self._window_hook, self._on_window_block, True)

    def disarm_interrupt_window(self) -> None:
        if hasattr(self.counter, "set_interrupt_window"):
            self.counter.set_interrupt_window(False)
        else:
            self._window_hook = self._block_hook(self._window_hook, self._on_window_block, False)

    def _block_hook(self, handle: int | None, callback: Callable[..., None], armed: bool) -> int | None:
        """Count engine: add (armed) or remove a UC_HOOK_BLOCK ``callback``; the
        new handle. Blocks translated before the change are dropped, since only
        blocks translated while a block hook exists call it."""
        if armed and handle is None:
            handle = self.uc.hook_add(UC_HOOK_BLOCK, callback)
            self.flush_code()
        elif not armed and handle is not None:
            self.uc.hook_del(handle)
            handle = None
            self.flush_code()
        return handle

    def _on_window_block(self, uc: Uc, address: int, size: int, _ud: object) -> None:
        # Not inside an STI shadow: `sti; hlt` must reach its HLT (the
        # interrupt then wakes it), `sti; nop; cli` stops before the CLI.
        if (
            uc.reg_read(UC_X86_REG_RFLAGS) & RFLAGS_IF
            and self.counter.stop_count is None
            and not CpuContext(uc, self.layout).hflags & HF_INHIBIT_IRQ_MASK
        ):
            self.stats.by_reason["interrupt-window"] += 1
            self.counter.stop_count = self.counter.in_slice()  # before this block's first instruction
            uc.emu_stop()

    def watch_address_space(self, armed: bool) -> None:
        """While armed, a slice ends before the first block that runs in another
        address space than the slice began in (CR0, CR3, CR4 or EFER changed):
        every write to them ends its block in QEMU's translator, so the run
        loop sees the new page tables before the guest's first access through
        them (what a debugger's virtual watchpoints need). Slice ends are not
        guest-visible, so this changes nothing the guest sees."""
        if hasattr(self.counter, "set_paging_watch"):  # the native counter checks it in C
            self.counter.set_paging_watch(armed)
        else:  # run() notes the address space each slice begins in
            self._paging_hook = self._block_hook(self._paging_hook, self._on_paging_block, armed)

    def _on_paging_block(self, uc: Uc, address: int, size: int, _ud: object) -> None:
        if self.counter.stop_count is None and self.paging_regs() != self._paging_seen:
            self.counter.stop_count = self.counter.in_slice()  # before this block's first instruction
            uc.emu_stop()

    def interrupts_enabled(self) -> bool:
        """IF=1 and no STI/MOV SS interrupt shadow on the next instruction."""
        if not self.uc.reg_read(UC_X86_REG_RFLAGS) & RFLAGS_IF:
            return False
        return not CpuContext(self.uc, self.layout).hflags & HF_INHIBIT_IRQ_MASK

    def inject_interrupt(self, vector: int) -> None:
        """Deliver an external interrupt at the current RIP (between slices)."""
        self.stats.by_reason["external-interrupt"] += 1
        self.stats.interrupts[vector] += 1
        ctx = CpuContext(self.uc, self.layout)
        try:
            self.injector.inject(ctx, self.paging_regs(), Event(vector, None, "external"), self.rip)
        except TripleFault as e:
            raise GuestError(f"{e} (icount {self.icount})") from None
        ctx.restore()

    # -- state ---------------------------------------------------------------------
    @property
    def rip(self) -> int:
        return self.uc.reg_read(UC_X86_REG_RIP)

    def paging_regs(self) -> PagingRegs:
        uc = self.uc
        return PagingRegs(
            uc.reg_read(UC_X86_REG_CR0),
            uc.reg_read(UC_X86_REG_CR3),
            uc.reg_read(UC_X86_REG_CR4),
            uc.reg_read(UC_X86_REG_MSR, MSR_EFER),
        )

    def registers(self) -> dict[str, int]:
        values = self.uc.reg_read_batch(GPRS)
        return dict(zip(GPR_NAMES, values))

    def system_registers(self) -> dict[str, int]:
        uc = self.uc
        regs = dict(zip(_SYSTEM_NAMES, uc.reg_read_batch(_SYSTEM_REGS)))
        regs["efer"] = uc.reg_read(UC_X86_REG_MSR, MSR_EFER)
        return regs

    def set_register(self, name: str, value: int) -> None:
        """Write one register by its gdb name (the debugger's `set $reg`)."""
        reg = _REG_BY_NAME.get(name)
        if reg is None:
            raise KeyError(name)
        self.uc.reg_write(reg, value & 0xFFFF_FFFF_FFFF_FFFF)

    def register_state(self) -> bytes:
        """The architectural registers that define the CPU state, packed."""
        regs = self.uc.reg_read_batch(_DIGEST_REGS)
        packed = struct.pack(f"<{len(regs)}Q", *(r & 0xFFFF_FFFF_FFFF_FFFF for r in regs))
        return packed + struct.pack("<QQQ", self.uc.reg_read(UC_X86_REG_MSR, MSR_EFER), self.icount, self.idle_ns)

    def digest(self) -> str:
        """Full CPU digest: registers, time and all of RAM."""
        h = hashlib.blake2b(self.register_state(), digest_size=16)
        h.update(self.ram.digest())
        return h.hexdigest()

    def enter_protected_mode_flat(self, eip: int, regs: dict[int, int]) -> None:
        """Put the CPU in the PVH entry state (Xen docs/misc/pvh.pandoc):
        32-bit protected mode, paging off, flat 4 GiB CS (0x10) and DS/ES/SS (0x18)."""
        uc = self.uc
        uc.reg_write(UC_X86_REG_CR4, 0)
        uc.reg_write(UC_X86_REG_MSR, (MSR_EFER, 0))
        uc.reg_write(UC_X86_REG_CR0, 0x11)  # PE | ET
        for reg, value in regs.items():
            uc.reg_write(reg, value)
        uc.reg_write(UC_X86_REG_RIP, eip)
        uc.reg_write(UC_X86_REG_RFLAGS, 0x2)
        ctx = CpuContext(uc, self.layout)
        ctx.hflags = (ctx.hflags & ~(HF_LMA_MASK | HF_CS64_MASK | 3)) | HF_PE_MASK | HF_CS32_MASK | HF_SS32_MASK
        ctx.load_segment(SEG_CS, 0x10, 0, 0xFFFFFFFF, FLAT_CODE32)
        for seg in (SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS):
            ctx.load_segment(seg, 0x18, 0, 0xFFFFFFFF, FLAT_DATA32)
        ctx.restore()

    def enter_long_mode(
        self, rip: int, regs: dict[int, int], *, cr3: int, gdt: tuple[int, int], code_sel: int, data_sel: int
    ) -> None:
        """Put the CPU in the Linux 64-bit boot protocol entry state (boot.rst,
        "64-bit BOOT PROTOCOL"): long mode with PAE paging on ``cr3``, the GDT
        at ``gdt`` = (base, limit), CS = ``code_sel`` (64-bit, ring 0), the data
        segments = ``data_sel`` (flat 4 GiB), interrupts off, no IDT."""
        uc = self.uc
        uc.reg_write(UC_X86_REG_CR4, CR4_PAE)
        uc.reg_write(UC_X86_REG_CR3, cr3)
        uc.reg_write(UC_X86_REG_MSR, (MSR_EFER, EFER_LME | EFER_LMA))
        uc.reg_write(UC_X86_REG_CR0, CR0_PE | CR0_ET | CR0_NE | CR0_PG)
        uc.reg_write(UC_X86_REG_GDTR, (0, gdt[0], gdt[1], 0))
        uc.reg_write(UC_X86_REG_IDTR, (0, 0, 0, 0))
        for reg, value in regs.items():
            uc.reg_write(reg, value)
        uc.reg_write(UC_X86_REG_RIP, rip)
        uc.reg_write(UC_X86_REG_RFLAGS, 0x2)
        ctx = CpuContext(uc, self.layout)
        ctx.hflags = (ctx.hflags & ~HF_CPL_MASK) | HF_PE_MASK | HF_LMA_MASK
        ctx.load_segment(SEG_SS, data_sel, 0, 0xFFFFFFFF, DATA_RING0)
        ctx.load_segment(SEG_CS, code_sel, 0, 0xFFFFFFFF, CODE64_RING0)
        for seg in (SEG_DS, SEG_ES, SEG_FS, SEG_GS):
            ctx.load_segment(seg, data_sel, 0, 0xFFFFFFFF, DATA_RING0)
        ctx.restore()
        self.flush_code()

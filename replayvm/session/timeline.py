"""The timeline of a recording: positions, checkpoints, and going backwards.

A position is an icount: the state after that many instructions, at a slice
boundary, before the boundary's own work (timers, input, interrupt
injection) -- exactly where ``Machine.run(max_insns=t)`` stops, so every way
of reaching t (straight, from a checkpoint, by stepping) gives the same
state (DESIGN.md §5). Checkpoints are taken automatically at the frontier
of what has been replayed, within a memory budget (:mod:`checkpoints`).

Going backwards is going forwards from a checkpoint, as in rr:
``reverse_stepi`` seeks to t-1; ``reverse_continue`` replays the intervals
between checkpoints, newest first, with breakpoints and watchpoints armed in
*scan* mode, and stops at the last hit before the present. Breakpoints are
Unicorn code hooks on their address only, watchpoints memory hooks on their
range only, and both exist only while armed, so plain replay stays at full
speed. Debugger logic lives here and never prints (STYLE.md): the REPL and
the GDB stub format what it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import capstone
from unicorn import UC_HOOK_CODE, Uc
from unicorn.x86_const import UC_X86_REG_RSP

from replayvm.engine.memory import PAGE_SIZE, GuestMemoryError
from replayvm.engine.paging import PageFault, translate
from replayvm.errors import ReplayVMError
from replayvm.log import Event
from replayvm.machine import Machine
from replayvm.session.checkpoints import CheckpointStore
from replayvm.session.replayer import Replayer
from replayvm.session.watch import WatchHooks

DEFAULT_CHECKPOINT_MEMORY = 256 << 20
DEFAULT_CHECKPOINT_INTERVAL = 2_000_000

Condition = Callable[[], bool]


class DebuggerError(ReplayVMError):
    """A debugger request that cannot be done (bad address, no such breakpoint)."""


@dataclass(slots=True)
class Breakpoint:
    number: int
    address: int
    temporary: bool = False
    condition: Condition | None = None
    condition_text: str = ""
    hits: int = 0
    internal: bool = False  # finish / nexti helpers, never shown


@dataclass(slots=True)
class Watchpoint:
    number: int
    address: int
    length: int
    kind: str = "write"  # "write" | "read" | "access"
    hits: int = 0
    physical: bool = False  # address is guest-physical: every mapping of it


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a command stopped, and where."""

    reason: str  # step | breakpoint | watchpoint | start | end | interrupted | seek
    icount: int
    rip: int
    number: int | None = None
    message: str = ""
    old: bytes | None = None
    new: bytes | None = None


@dataclass(slots=True)
class _Hit:
    position: int
    number: int
    is_watch: bool


@dataclass(slots=True)
class _Armed:
    handles: list[int] = field(default_factory=list)
    watches: WatchHooks | None = None


class DebugSession:
    """Drive a recording: seek, step and continue both ways, inspect, divert."""

    def __init__(
        self,
        replayer: Replayer,
        *,
        checkpoint_memory: int = DEFAULT_CHECKPOINT_MEMORY,
        checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
        on_output: Callable[[bytes], None] | None = None,
    ) -> None:
        self.replayer = replayer
        self.machine: Machine = replayer.machine
        self.vcpu = self.machine.vcpu
        self.interval = checkpoint_interval
        self.store = CheckpointStore(self.machine.ram, checkpoint_memory)
        self.breakpoints: dict[int, Breakpoint] = {}
        self.watchpoints: dict[int, Watchpoint] = {}
        self._next_number = 1
        self.diverged = False
        self.end_icount: int | None = None  # known once the end has been reached
        self.end_message = ""
        self._interrupt = False
        self._mode = "plain"  # plain | first | scan
        self._start = 0
        self._scan_end = 0
        self._hits: list[_Hit] = []
        self._first: _Hit | None = None
        self._show_output = False
        self._on_output = on_output or (lambda data: None)
        self.machine._serial_out = self._output
        self._md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._watches: WatchHooks | None = None
        self.store.append(0, self._save())

    @classmethod
    def open(cls, path: str | Path, **kwargs: object) -> DebugSession:
        return cls(Replayer(path), **kwargs)  # type: ignore[arg-type]

    # -- position ----------------------------------------------------------------
    @property
    def icount(self) -> int:
        return self.vcpu.icount

    @property
    def recorded_end(self) -> int | None:
        end = self.replayer.end
        return end.icount if end is not None else None

    @property
    def at_end(self) -> bool:
        return self.machine.result is not None

    def interrupt(self) -> None:
        """Ctrl-C: the running command stops at the next slice boundary."""
        self._interrupt = True

    # -- RunObserver -----------------------------------------------------------------
    def next_stop(self, icount: int) -> int | None:
        stops = [s for s in (self.replayer.next_stop(icount),) if s is not None]
        frontier = self.store.last_icount() + self.interval
        if not self.diverged and icount < frontier:
            stops.append(frontier)
        return min(stops) if stops else None

    def at_boundary(self, machine: Machine) -> None:
        icount = machine.vcpu.icount
        if self._watches is not None:
            self._watches.at_boundary()
        if not self.diverged:
            self.replayer.at_boundary(machine)
            if icount >= self.store.last_icount() + self.interval:
                self.store.append(icount, self._save())
        if self._interrupt:
            machine.request_stop("interrupted", 130, "interrupted")
        elif self._mode == "first" and self._first is not None:
            machine.request_stop("debug", 0, "debugger stop")

    def _save(self) -> dict[str, object]:
        return {"machine": self.machine.save_state(), "replay": self.replayer.save_state()}

    def _output(self, data: bytes) -> None:
        if self._show_output:
            self._on_output(data)

    # -- the one way to move: run forward from here ---------------------------------
    def _run(self, target: int | None, mode: str = "plain", show_output: bool = False) -> str:
        """Run forward to icount ``target`` (None: as far as it goes); returns
        "target", "interrupted", "debug" or "end"."""
        if self.machine.result is not None:
            return "end"
        self._mode, self._start, self._hits, self._first = mode, self.icount, [], None
        self._scan_end = target if target is not None else 1 << 62
        self._show_output = show_output
        armed = self._arm() if mode != "plain" else _Armed()
        try:
            result = self.machine.run(max_insns=target, observer=self)
        finally:
            self._disarm(armed)
            self._show_output = False
            self._mode = "plain"
        user_interrupt, self._interrupt = self._interrupt, False
        # "max-insns"/"interrupted" are also how the replayer ends a recording that
        # was itself stopped that way: only our own target or Ctrl-C is not the end.
        reached = result.reason == "max-insns" and target is not None and self.icount == target
        if reached or (result.reason == "interrupted" and user_interrupt) or result.reason == "debug":
            self.machine.result = None
            return "target" if reached else result.reason
        if not self.diverged:
            self.end_icount = self.icount
        self.end_message = result.message
        return "end"

    def _restore(self, index: int) -> None:
        cp = self.store.restore(index, ram_at=self._ram_at_checkpoint())
        self.machine.load_state(cp.state["machine"])  # type: ignore[arg-type]
        self.replayer.load_state(cp.state["replay"])  # type: ignore[arg-type]
        self.diverged = False

    def _ram_at_checkpoint(self) -> int | None:
        """The checkpoint whose RAM the guest's is now, when that is certain:
        an undiverted replay standing exactly at a checkpoint's icount (every
        way of reaching a position gives the same state)."""
        if self.diverged or self.machine.result is not None:
            return None
        index = self.store.before(self.icount)
        return index if self.store.checkpoints[index].icount == self.icount else None

    def seek(self, target: int) -> Stop:
        """Go to position ``target`` (clamped to the recording)."""
        target = max(0, target)
        if self.end_icount is not None:
            target = min(target, self.end_icount)
        if target < self.icount or self.diverged or (target == self.icount and self.at_end):
            self._restore(self.store.before(target))
        if target > self.icount:
            why = self._run(target)
            if why == "interrupted":
                return self._stop("interrupted", "interrupted")
            if why == "end":
                return self._stop("end", f"end of the recording: {self.end_message}")
        return self._stop("seek")

    def _stop(self, reason: str, message: str = "", **kw: object) -> Stop:
        return Stop(reason, self.icount, self.vcpu.rip, message=message, **kw)  # type: ignore[arg-type]

    # -- stepping ------------------------------------------------------------------
    def stepi(self, count: int = 1) -> Stop:
        if self.at_end:
            return self._stop("end", "the recording ends here")
        why = self._run(self.icount + count, show_output=True)
        if why == "end":
            return self._stop("end", f"end of the recording: {self.end_message}")
        return self._stop("interrupted" if why == "interrupted" else "step")

    def reverse_stepi(self, count: int = 1) -> Stop:
        if self.icount == 0:
            return self._stop("start", "reached the start of the recording")
        stop = self.seek(self.icount - count)
        if stop.reason == "seek":
            return self._stop("start", "reached the start of the recording") if self.icount == 0 else self._stop("step")
        return stop

    def nexti(self) -> Stop:
        insn = self.instruction_at(self.vcpu.rip)
        if insn is None or insn.mnemonic != "call":
            return self.stepi()
        rsp = self.vcpu.uc.reg_read(UC_X86_REG_RSP)
        return self._continue_to(self.vcpu.rip + insn.size, rsp)

    def reverse_nexti(self) -> Stop:
        here_rip, here_rsp = self.vcpu.rip, self.vcpu.uc.reg_read(UC_X86_REG_RSP)
        stop = self.reverse_stepi()
        if stop.reason != "step":
            return stop
        insn = self.instruction_at(self.vcpu.rip)
        if insn is None or insn.mnemonic != "ret" or self.vcpu.uc.reg_read(UC_X86_REG_RSP) != here_rsp - 8:
            return stop
        call_site = self.call_site_before(here_rip)
        if call_site is None:
            return stop
        return self._reverse_to(call_site, here_rsp)

    def finish(self) -> Stop:
        ret, cfa = self.frame_return()
        return self._continue_to(ret, cfa)

    def reverse_finish(self) -> Stop:
        ret, cfa = self.frame_return()
        call_site = self.call_site_before(ret)
        if call_site is None:
            raise DebuggerError(f"cannot find the call before return address {ret:#x}")
        return self._reverse_to(call_site, cfa)

    def frame_return(self) -> tuple[int, int]:
        """(return address, CFA) of the current frame: at a function's first
        instruction from [RSP], else by the frame pointer ([RBP+8])."""
        uc = self.vcpu.uc
        rsp = uc.reg_read(UC_X86_REG_RSP)
        insn = self.instruction_at(self.vcpu.rip)
        if insn is not None and (insn.mnemonic in ("push", "endbr64") and insn.op_str in ("rbp", "")):
            return int.from_bytes(self.read_memory(rsp, 8), "little"), rsp + 8
        rbp = self.registers()["rbp"]
        return int.from_bytes(self.read_memory(rbp + 8, 8), "little"), rbp + 16

    def _internal(self, address: int, rsp: int) -> Breakpoint:
        uc = self.vcpu.uc
        bp = Breakpoint(0, address, temporary=True, internal=True)
        bp.condition = lambda: uc.reg_read(UC_X86_REG_RSP) == rsp
        return bp

    def _continue_to(self, address: int, rsp: int) -> Stop:
        internal = self._internal(address, rsp)
        self.breakpoints[0] = internal
        try:
            stop = self.cont()
        finally:
            self.breakpoints.pop(0, None)
        return self._stop("step") if stop.number == 0 else stop

    def _reverse_to(self, address: int, rsp: int) -> Stop:
        self.breakpoints[0] = self._internal(address, rsp)
        try:
            stop = self.reverse_cont()
        finally:
            self.breakpoints.pop(0, None)
        return self._stop("step") if stop.number == 0 else stop

    # -- continuing ------------------------------------------------------------------
    def cont(self) -> Stop:
        """Forward to the next breakpoint or watchpoint hit, or the end."""
        if self.at_end:
            return self._stop("end", "the recording ends here")
        why = self._run(None, mode="first", show_output=True)
        hit = self._first
        if hit is not None:
            if self.icount != hit.position:
                self.seek(hit.position)
            return self._report(hit)
        if why == "interrupted":
            return self._stop("interrupted", "interrupted")
        return self._stop("end", f"end of the recording: {self.end_message}")

    def reverse_cont(self) -> Stop:
        """Back to the last breakpoint or watchpoint hit before now, or the start."""
        if self.diverged:
            self.seek(self.icount)
        end = self.icount
        index = self.store.before(max(0, end - 1))
        while True:
            if self._interrupt:
                self._interrupt = False
                return self._stop("interrupted", "interrupted")
            self._restore(index)
            why = self._run(end, mode="scan")
            hits = [h for h in self._hits if h.position < end]
            if hits:
                last = max(hits, key=lambda h: h.position)
                self.seek(last.position)
                return self._report(last)
            if why == "interrupted":
                self.seek(end)
                return self._stop("interrupted", "interrupted")
            if index == 0:
                self.seek(0)
                return self._stop("start", "reached the start of the recording")
            end = self.store.checkpoints[index].icount
            index -= 1

    def _report(self, hit: _Hit) -> Stop:
        if hit.is_watch:
            wp = self.watchpoints[hit.number]
            wp.hits += 1
            new = self.read_memory(wp.address, wp.length, physical=wp.physical)
            return self._stop("watchpoint", f"watchpoint {wp.number}", number=wp.number, new=new)
        bp = self.breakpoints.get(hit.number)
        if bp is not None:
            bp.hits += 1
            if bp.temporary and not bp.internal:
                del self.breakpoints[hit.number]
        return self._stop("breakpoint", f"breakpoint {hit.number}", number=hit.number)

    # -- hooks ---------------------------------------------------------------------------
    def _arm(self) -> _Armed:
        armed = _Armed()
        uc = self.vcpu.uc
        for number, bp in self.breakpoints.items():
            armed.handles.append(uc.hook_add(UC_HOOK_CODE, self._on_code, number, bp.address, bp.address))
        if self.watchpoints:
            watches = WatchHooks(uc, self.vcpu.paging_regs, self._read_phys, self.read_code, self._watch_hit)
            for number, wp in self.watchpoints.items():
                if wp.physical:
                    watches.add_physical(number, wp.address, wp.length, wp.kind)
                else:
                    watches.add_virtual(number, wp.address, wp.length, wp.kind)
            armed.watches = self._watches = watches
            # A virtual watchpoint's walk must see a new CR3 before the guest uses it.
            self.vcpu.watch_address_space(watches.follows_paging)
        if armed.handles or armed.watches:
            self.vcpu.flush_code()  # instrument already-translated blocks
        return armed

    def _disarm(self, armed: _Armed) -> None:
        for handle in armed.handles:
            self.vcpu.uc.hook_del(handle)
        if armed.watches is not None:
            armed.watches.disarm()
            self._watches = None
            self.vcpu.watch_address_space(False)
        if armed.handles or armed.watches:
            self.vcpu.flush_code()

    def _on_code(self, uc: Uc, address: int, size: int, number: int) -> None:
        vcpu = self.vcpu
        position = vcpu.icount + vcpu.counter.in_slice() - 1  # before this instruction
        bp = self.breakpoints.get(number)
        if bp is None or bp.address != address:
            return
        if self._mode == "scan":
            if position < self._scan_end and (bp.condition is None or bp.condition()):
                self._hits.append(_Hit(position, number, False))
            return
        if position <= self._start or self._first is not None:
            return
        if bp.condition is not None and not bp.condition():
            return
        self._first = _Hit(position, number, False)
        vcpu.debug_stop(position - vcpu.icount)

    def _watch_hit(self, number: int) -> None:
        vcpu = self.vcpu
        position = vcpu.icount + vcpu.counter.in_slice()  # after the accessing instruction
        if self._mode == "scan":
            if position < self._scan_end:
                self._hits.append(_Hit(position, number, True))
            return
        if position <= self._start or self._first is not None:
            return
        self._first = _Hit(position, number, True)  # stops at the next boundary, then seeks back

    # -- breakpoints ---------------------------------------------------------------------
    def add_breakpoint(
        self, address: int, *, temporary: bool = False, condition: Condition | None = None, condition_text: str = ""
    ) -> Breakpoint:
        bp = Breakpoint(self._take_number(), address, temporary, condition, condition_text)
        self.breakpoints[bp.number] = bp
        return bp

    def add_watchpoint(self, address: int, length: int, kind: str = "write", *, physical: bool = False) -> Watchpoint:
        """Watch [address, address+length), guest-virtual (followed through the
        page tables) or guest-physical (every mapping of it): see :mod:`watch`."""
        if kind not in ("write", "read", "access"):
            raise DebuggerError(f"unknown watchpoint kind {kind!r}")
        if not 1 <= length <= 1 << 20:
            raise DebuggerError("watchpoint length must be 1 byte to 1 MiB")
        if physical and not self.machine.ram.contains(address, length):
            raise DebuggerError(f"Physical address {address:#x} is not in guest RAM.")
        wp = Watchpoint(self._take_number(), address, length, kind, physical=physical)
        self.watchpoints[wp.number] = wp
        return wp

    def delete(self, number: int) -> None:
        if self.breakpoints.pop(number, None) is None and self.watchpoints.pop(number, None) is None:
            raise DebuggerError(f"No breakpoint number {number}.")

    def _take_number(self) -> int:
        n = self._next_number
        self._next_number += 1
        return n

    # -- inspecting -------------------------------------------------------------------
    def registers(self) -> dict[str, int]:
        return self.vcpu.registers() | self.vcpu.system_registers()

    def read_memory(self, address: int, length: int, *, physical: bool = False) -> bytes:
        """Guest memory without side effects (no A/D bits set)."""
        if not 0 <= length <= 1 << 24:
            raise DebuggerError("cannot read that much memory at once")
        out = bytearray()
        addr = address
        while len(out) < length:
            chunk = min(length - len(out), PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            paddr = addr if physical else self.translate(addr)
            try:
                out += self.machine.ram.read(paddr, chunk)
            except GuestMemoryError:
                raise DebuggerError(f"Cannot access memory at address {addr:#x}") from None
            addr += chunk
        return bytes(out)

    def translate(self, vaddr: int) -> int:
        try:
            return translate(self.vcpu.paging_regs(), vaddr, self._read_phys).paddr
        except (PageFault, GuestMemoryError):
            raise DebuggerError(f"Cannot access memory at address {vaddr:#x}") from None

    def _read_phys(self, paddr: int, size: int) -> int:
        return self.machine.ram.read_int(paddr, size)

    def read_code(self, address: int, length: int) -> bytes:
        """As many of ``length`` bytes at ``address`` as are readable (code may
        end where the next page is not mapped)."""
        try:
            return self.read_memory(address, length)
        except DebuggerError:
            pass
        to_page_end = PAGE_SIZE - (address & (PAGE_SIZE - 1))
        if to_page_end < length:
            try:
                return self.read_memory(address, to_page_end)
            except DebuggerError:
                pass
        return b""

    def instruction_at(self, address: int) -> capstone.CsInsn | None:
        try:
            code = self.read_memory(address, 16)
        except DebuggerError:
            return None
        return next(self._md.disasm(code, address, 1), None)

    def call_site_before(self, return_address: int) -> int | None:
        """The address of the CALL that returns to ``return_address``."""
        for length in (5, 2, 3, 6, 7, 4):
            try:
                code = self.read_memory(return_address - length, length)
            except DebuggerError:
                continue
            insn = next(self._md.disasm(code, return_address - length, 1), None)
            if insn is not None and insn.mnemonic == "call" and insn.size == length:
                return return_address - length
        return None

    def events_near(self, icount: int, count: int = 10) -> list[Event]:
        events = self.replayer.events()
        before = [e for e in events if e.icount <= icount][-count:]
        after = [e for e in events if e.icount > icount][:count]
        return before + after

    def checkpoints(self) -> list[tuple[int, int]]:
        return [(c.icount, c.size) for c in self.store.checkpoints]

    # -- diverting (rr's diversion session) -------------------------------------------------
    def set_register(self, name: str, value: int) -> None:
        self.vcpu.set_register(name, value)
        self.diverged = True

    def write_memory(self, address: int, data: bytes, *, physical: bool = False) -> None:
        for i, byte in enumerate(data):
            paddr = address + i if physical else self.translate(address + i)
            try:
                self.machine.ram.write(paddr, bytes([byte]))
            except GuestMemoryError:
                raise DebuggerError(f"Cannot access memory at address {address + i:#x}") from None
        self.vcpu.flush_code()
        self.diverged = True

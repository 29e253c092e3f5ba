"""The debugger: one DebugSession, the symbols of its kernel, and the state
the commands share (value history, breakpoint extras, x and list cursors).

:meth:`Debugger.execute` runs one command line and never raises: a user
error (ReplayVMError, bad arguments) is one line on stderr; anything else
is a bug, reported as one line with a hint to rerun with ``--debug``. The
engine side never prints (STYLE.md): everything a stop looks like on the
screen is decided here, from the :class:`~replayvm.session.timeline.Stop`
the session returns.
"""

from __future__ import annotations

import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from replayvm.debugger.commands import REGISTRY, CommandError, load_commands
from replayvm.debugger.console import Console
from replayvm.debugger.context import SessionContext
from replayvm.debugger.disasm import MAX_INSN, Disassembler, Instruction
from replayvm.debugger.expr import CType, ExprError, Node, Reg, Sym, Value, evaluate, parse, walk
from replayvm.debugger.format import addr16, watch_value
from replayvm.debugger.source import LineTable, SourceFiles
from replayvm.debugger.symbols import SymbolTable
from replayvm.engine.context import CpuContext
from replayvm.engine.uc_abi import HF_CS32_MASK, HF_CS64_MASK
from replayvm.errors import ReplayVMError
from replayvm.session.recording import KERNEL_BLOB
from replayvm.session.timeline import DEFAULT_CHECKPOINT_MEMORY, DebugSession, Stop, Watchpoint

PROMPT = "(rvdb) "
DIVERGED_PROMPT = "(rvdb diverged) "
GUESTS_SOURCE_DIR = Path(__file__).resolve().parent.parent / "guests"  # bundled guests' DWARF paths are relative to it

INTERRUPTED_END = "end of the recording: the recorded run was stopped by Ctrl-C here"
WATCH_TITLES = {
    "write": "Hardware watchpoint",
    "read": "Hardware read watchpoint",
    "access": "Hardware access (read/write) watchpoint",
}


@dataclass(slots=True)
class WatchInfo:
    text: str  # what the user typed
    ctype: CType | None  # from a cast, for showing values


@dataclass(slots=True)
class ExamineState:
    """``x`` remembers its format and continues where it stopped."""

    fmt: str = "x"
    size: int = 4
    next_address: int | None = None


class Condition:
    """A breakpoint condition, compiled once and evaluated inside the run's
    code hook. Nothing may escape into Unicorn from there: an error stops at
    the breakpoint (as gdb does) and is reported with the stop."""

    def __init__(self, debugger: Debugger, tree: Node, text: str) -> None:
        self.tree = tree
        self.text = text
        self.number = 0
        self._debugger = debugger
        self._context = SessionContext(debugger.session, debugger.symbols, debugger.history)

    def __call__(self) -> bool:
        try:
            return evaluate(self.tree, self._context.fresh()).value != 0
        except ExprError as e:
            self._debugger.condition_errors[self.number] = str(e)
        except Exception as e:  # noqa: BLE001 - an exception must never unwind through a Unicorn hook
            self._debugger.condition_errors[self.number] = f"{type(e).__name__}: {e}"
        return True


class Debugger:
    def __init__(
        self,
        session: DebugSession,
        *,
        console: Console | None = None,
        debug: bool = False,
        source_dirs: list[Path] | None = None,
    ) -> None:
        load_commands()
        self.session = session
        self.console = console or Console()
        self.debug = debug
        image = session.replayer.reader.blob(KERNEL_BLOB)
        self.symbols = SymbolTable.from_elf(image)
        self.lines = LineTable.from_elf(image)
        self.sources = SourceFiles(source_dirs if source_dirs is not None else [GUESTS_SOURCE_DIR])
        self.disasm = Disassembler(self.symbols)
        self.history: list[Value] = []
        self.context = SessionContext(session, self.symbols, self.history)
        self.last_repeatable: str | None = None
        self.temporaries: set[int] = set()
        self.watch_info: dict[int, WatchInfo] = {}
        self.condition_errors: dict[int, str] = {}
        self.examine = ExamineState()
        self.list_next: tuple[str, int] | None = None
        self.quit_requested = False
        self.user_interrupted = False  # Ctrl-C arrived during the last motion

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        console: Console | None = None,
        checkpoint_memory: int = DEFAULT_CHECKPOINT_MEMORY,
        debug: bool = False,
        source_dirs: list[Path] | None = None,
    ) -> Debugger:
        console = console or Console()
        session = DebugSession.open(path, checkpoint_memory=checkpoint_memory, on_output=console.guest_output)
        return cls(session, console=console, debug=debug, source_dirs=source_dirs)

    @property
    def prompt(self) -> str:
        return DIVERGED_PROMPT if self.session.diverged else PROMPT

    # -- running command lines -------------------------------------------------------
    def execute(self, line: str, *, repeat: bool = True) -> bool:
        """Run one command line; True unless it failed. An empty line runs the
        last stepping command again when ``repeat`` (interactive use)."""
        text = line.strip()
        if not text or text.startswith("#"):
            if text or not repeat or self.last_repeatable is None:
                return True
            text = self.last_repeatable
        diverged = self.session.diverged
        ok = False
        self.last_repeatable = None
        try:
            cmd, args = REGISTRY.parse(text)
            cmd.handler(self, args)
            self.last_repeatable = text if cmd.repeatable else None
            ok = True
        except ReplayVMError as e:
            self.console.error(str(e))
        except KeyboardInterrupt:
            self.console.error("Quit")
        except Exception as e:  # noqa: BLE001 - a bug in a command must not end the session
            if self.debug:
                self.console.error(traceback.format_exc().rstrip())
            else:
                self.console.error(f"Internal error: {type(e).__name__}: {e} (rerun with --debug for a traceback)")
        finally:
            self._note_diversion(diverged)
            self.console.flush()
        return ok

    def _note_diversion(self, before: bool) -> None:
        now = self.session.diverged
        if now and not before:
            self.console.line(
                "Diverged from the recording: the machine now runs on the state you wrote. "
                "Any seek (goto, reverse-*) returns to the recording."
            )
        elif before and not now:
            self.console.line("Back on the recording: the diversion was undone.")

    # -- expressions -------------------------------------------------------------------
    def evaluate(self, text: str) -> Value:
        return evaluate(parse(text), self.context.fresh())

    def value_of(self, tree: Node) -> Value:
        return evaluate(tree, self.context.fresh())

    def address(self, text: str) -> int:
        return self.evaluate(text).unsigned

    def count(self, text: str | None, default: int = 1, *, what: str = "count") -> int:
        if text is None:
            return default
        value = self.evaluate(text).value
        if value < 0:
            raise CommandError(f"The {what} must not be negative.")
        return value

    def condition(self, text: str) -> Condition:
        """A compiled condition; its registers and symbols must exist now, as
        gdb checks them when the breakpoint is set."""
        tree = parse(text)
        ctx = self.context.fresh()
        for node in walk(tree):
            if isinstance(node, Reg):
                ctx.register(node.name)
            elif isinstance(node, Sym):
                ctx.symbol(node.name)
        return Condition(self, tree, text)

    # -- places ---------------------------------------------------------------------
    def label(self, address: int, *, code: bool = True) -> str:
        return self.disasm.label(address, code=code)

    def function_name(self, address: int) -> str:
        found = self.symbols.symbolize(address)
        return found[0] if found is not None else "??"

    def location(self, address: int, *, caller: bool = False) -> str:
        """``0x0000000000101780 in kprintf ()``, with ``at file:line`` when
        DWARF knows it (``caller``: a return address, look up the call)."""
        # A return address may be just past a call that never returns (the
        # last instruction of its function): name the function of the call.
        look = address - 1 if caller else address
        text = f"{addr16(address)} in {self.function_name(look)} ()"
        info = self.lines.find(look)
        if info is not None:
            text += f" at {info.file}:{info.line}"
        return text

    def read_code(self, address: int, length: int) -> bytes:
        """As many of ``length`` bytes at ``address`` as are readable."""
        return self.session.read_code(address, length)

    def code_bits(self) -> int:
        """16, 32 or 64: how the CPU decodes code now (CS.L, CS.D in QEMU's hflags;
        the session does not say, and EFER.LMA alone misleads before paging)."""
        vcpu = self.session.vcpu
        hflags = CpuContext(vcpu.uc, vcpu.layout).hflags
        return 64 if hflags & HF_CS64_MASK else 32 if hflags & HF_CS32_MASK else 16

    def instructions(self, address: int, count: int) -> list[Instruction]:
        bits = self.code_bits()
        out: list[Instruction] = []
        while len(out) < count:
            want = min(4096, (count - len(out)) * MAX_INSN)
            code = self.read_code(address, want)
            if not code:
                break
            batch = self.disasm.decode(code, address, count - len(out), bits)
            if len(code) < want:  # the last one may be cut by unreadable memory
                batch = [i for i in batch if i.address + i.size <= address + len(code)] or batch[:1]
            if not batch:
                break
            out.extend(batch)
            address = batch[-1].address + batch[-1].size
        return out

    def instruction_line(self, insn: Instruction, *, current: bool) -> str:
        label = self.label(insn.address)
        where = f"{insn.address:#x}" + (f" {label}" if label else "")
        return f"{'=> ' if current else '   '}{where}:\t{insn.text}"

    # -- moving -----------------------------------------------------------------------
    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Ctrl-C while the guest runs asks the session to stop at the next
        slice boundary, and the REPL stays."""
        session = self.session
        # DebugSession has no public way to drop a stop request that arrived
        # after the last run of the previous command; without this it would
        # cut the next command short.
        if getattr(session, "_interrupt", False):
            session._interrupt = False
        self.user_interrupted = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum: int, frame: object) -> None:
            self.user_interrupted = True
            session.interrupt()

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def move(
        self, action: Callable[[], Stop], *, resume: Callable[[], Stop] | None = None, reverse: bool = False
    ) -> Stop:
        """Run a session motion and report where it stopped.

        With ``resume`` (continue, reverse-continue), a write watchpoint whose
        value did not change does not stop: the run resumes, as gdb's
        ``watch`` only reports changes."""
        session = self.session
        before = session.icount
        snapshot = {n: self._watched(w) for n, w in session.watchpoints.items()}
        self.condition_errors.clear()
        old: bytes | None = None
        with self.interruptible():
            stop = self._step_off_interrupted_end() if reverse and self._at_interrupted_end() else None
            if stop is None:
                stop = action()
            while stop.reason == "watchpoint" and stop.number is not None:
                old = snapshot.get(stop.number) if stop.icount > before else self._value_before(stop)
                wp = session.watchpoints.get(stop.number)
                if resume is None or wp is None or wp.kind != "write" or old is None or old != stop.new:
                    break
                before = stop.icount
                stop = resume()
            if stop.reason in ("interrupted", "end") and not self.user_interrupted and self._at_interrupted_end():
                stop = replace(stop, reason="end", message=INTERRUPTED_END)
        self.report(stop, old)
        return stop

    # The session takes the end of a recording that was itself stopped by
    # Ctrl-C (the replayer stops there with reason "interrupted") for a Ctrl-C
    # of its own: a run that reaches that end says "interrupted", and a reverse
    # run that starts there gives up at once. Until the session tells the two
    # apart, the debugger does: it knows whether the user pressed Ctrl-C.
    def _at_interrupted_end(self) -> bool:
        end = self.session.replayer.end
        return end is not None and end.reason == "interrupted" and self.session.icount >= end.icount

    def _step_off_interrupted_end(self) -> Stop | None:
        """Start a reverse run one instruction before that end (reporting a
        breakpoint on the last instruction, which the run would then miss)."""
        session = self.session
        session.seek(session.icount - 1)
        rip = session.registers()["rip"]
        for number, bp in list(session.breakpoints.items()):
            if bp.internal or bp.address != rip or (bp.condition is not None and not bp.condition()):
                continue
            bp.hits += 1
            if bp.temporary:
                session.delete(number)
            return Stop("breakpoint", session.icount, rip, number=number, message=f"breakpoint {number}")
        return None

    def _watched(self, wp: Watchpoint) -> bytes | None:
        """The watched bytes now, or None where they cannot be read."""
        try:
            return self.session.read_memory(wp.address, wp.length, physical=wp.physical)
        except ReplayVMError:
            return None

    def _value_before(self, stop: Stop) -> bytes | None:
        """A watched location one instruction before the access that stopped a
        reverse run (the session reports only the value after it)."""
        wp = self.session.watchpoints.get(stop.number or 0)
        if wp is None or stop.icount == 0:
            return None
        self.session.seek(stop.icount - 1)
        old = self._watched(wp)
        self.session.seek(stop.icount)
        return old

    def report(self, stop: Stop, old: bytes | None = None) -> None:
        c = self.console
        if stop.reason == "breakpoint" and stop.number is not None:
            n = stop.number
            if n in self.condition_errors:
                c.line(f"Error in testing condition for breakpoint {n}:")
                c.line(self.condition_errors[n])
            temporary = n in self.temporaries and n not in self.session.breakpoints
            if temporary:
                self.temporaries.discard(n)
            c.line()
            c.line(f"{'Temporary breakpoint' if temporary else 'Breakpoint'} {n}, {self.where(stop)}")
        elif stop.reason == "watchpoint" and stop.number is not None:
            self._report_watch(stop, old)
        elif stop.reason == "start":
            c.line()
            c.line("No more reverse-execution history.")
            c.line(self.where(stop))
        elif stop.reason == "end":
            message = stop.message.removesuffix(": ")  # the session has no message for some ends
            if message == "the recording ends here" and self.session.end_message:
                message = f"{message}: {self.session.end_message}"
            c.line()
            c.line(message[:1].upper() + message[1:] + ".")
            c.line(self.where(stop))
        elif stop.reason == "interrupted":
            c.line()
            c.line("Interrupted.")
            c.line(self.where(stop))
        else:
            c.line(self.where(stop))
        self.show_current()

    def _report_watch(self, stop: Stop, old: bytes | None) -> None:
        c = self.console
        n = stop.number or 0
        wp = self.session.watchpoints.get(n)
        info = self.watch_info.get(n, WatchInfo(f"*{stop.rip:#x}", None))
        kind = wp.kind if wp is not None else "write"
        new = stop.new if stop.new is not None else (self._watched(wp) if wp else None)
        c.line()
        c.line(f"{WATCH_TITLES[kind]} {n}: {info.text}")
        c.line()
        if kind == "read" or (kind == "access" and old == new):
            c.line(f"Value = {watch_value(new, info.ctype)}")
        else:
            c.line(f"Old value = {watch_value(old, info.ctype)}")
            c.line(f"New value = {watch_value(new, info.ctype)}")
        c.line(self.where(stop))

    def where(self, stop: Stop) -> str:
        return f"{self.location(stop.rip)} [icount {stop.icount}]"

    def show_current(self) -> None:
        """The instruction about to run (and its source line, with DWARF)."""
        rip = self.session.registers()["rip"]
        info = self.lines.find(rip)
        if info is not None:
            text = self.sources.lines(info.file)
            if text is not None and 0 < info.line <= len(text):
                self.console.line(f"{info.line}\t{text[info.line - 1]}")
        insns = self.instructions(rip, 1)
        if insns:
            self.console.line(self.instruction_line(insns[0], current=True))
        else:
            self.console.line(f"=> {rip:#x}:\tCannot access memory at address {rip:#x}")

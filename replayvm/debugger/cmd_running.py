"""Moving through the recording: forwards, backwards, and straight to an icount."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from replayvm.debugger.commands import CommandError, command, parser
from replayvm.debugger.debugger import Debugger
from replayvm.debugger.frames import backtrace
from replayvm.session.timeline import Stop


def _repeat(step: Callable[[], Stop], times: int) -> Callable[[], Stop]:
    """``nexti 3``: the step ``times`` times, stopping early at anything but a step."""

    def run() -> Stop:
        stop = step()
        for _ in range(times - 1):
            if stop.reason != "step":
                break
            stop = step()
        return stop

    return run


def _positive_count(dbg: Debugger, text: str | None) -> int:
    n = dbg.count(text)
    if n == 0:
        raise CommandError("The count must be at least 1.")
    return n


_p = parser("continue", "Continue to the next breakpoint or watchpoint hit, or the end of the recording.")


@command("continue", aliases=("c",), parser=_p, category="running", repeatable=True)
def continue_(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.move(dbg.session.cont, resume=dbg.session.cont)


_p = parser("stepi", "Step N instructions (default 1) forwards.")
_p.add_argument("count", nargs="?", help="number of instructions (an expression)")


@command("stepi", aliases=("si",), parser=_p, category="running", repeatable=True)
def stepi(dbg: Debugger, args: argparse.Namespace) -> None:
    n = _positive_count(dbg, args.count)
    dbg.move(lambda: dbg.session.stepi(n))


_p = parser("nexti", "Step one instruction forwards, over calls (N times).")
_p.add_argument("count", nargs="?", help="number of instructions (an expression)")


@command("nexti", aliases=("ni",), parser=_p, category="running", repeatable=True)
def nexti(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.move(_repeat(dbg.session.nexti, _positive_count(dbg, args.count)))


def _frame_zero(dbg: Debugger, name: str) -> str:
    trace = backtrace(dbg.session, dbg.symbols, limit=2)
    if len(trace.frames) < 2:
        raise CommandError(f'"{name}" not meaningful in the outermost frame.')
    return dbg.location(trace.frames[0].pc)


_p = parser("finish", "Run until the current function returns to its caller.")


@command("finish", parser=_p, category="running", repeatable=True)
def finish(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.console.line(f"Run till exit from #0  {_frame_zero(dbg, 'finish')}")
    dbg.move(dbg.session.finish)


_p = parser("reverse-continue", "Run backwards to the previous breakpoint or watchpoint hit, or the start.")


@command("reverse-continue", aliases=("rc",), parser=_p, category="reverse", repeatable=True)
def reverse_continue(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.move(dbg.session.reverse_cont, resume=dbg.session.reverse_cont, reverse=True)


_p = parser("reverse-stepi", "Step N instructions (default 1) backwards.")
_p.add_argument("count", nargs="?", help="number of instructions (an expression)")


@command("reverse-stepi", aliases=("rsi",), parser=_p, category="reverse", repeatable=True)
def reverse_stepi(dbg: Debugger, args: argparse.Namespace) -> None:
    n = _positive_count(dbg, args.count)
    dbg.move(lambda: dbg.session.reverse_stepi(n))


_p = parser("reverse-nexti", "Step one instruction backwards, over calls (N times).")
_p.add_argument("count", nargs="?", help="number of instructions (an expression)")


@command("reverse-nexti", aliases=("rni",), parser=_p, category="reverse", repeatable=True)
def reverse_nexti(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.move(_repeat(dbg.session.reverse_nexti, _positive_count(dbg, args.count)), reverse=True)


_p = parser("reverse-finish", "Run backwards to the call of the current function.")


@command("reverse-finish", parser=_p, category="reverse", repeatable=True)
def reverse_finish(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.console.line(f"Run back to call of #0  {_frame_zero(dbg, 'reverse-finish')}")
    dbg.move(dbg.session.reverse_finish, reverse=True)


_p = parser(
    "goto",
    "Go to instruction count ICOUNT (an expression, or `start` or `end`).\n"
    "Any seek undoes a diversion made with `set`.",
)
_p.add_argument("icount", nargs="?", help="the position: instructions executed since boot")


@command("goto", parser=_p, category="reverse", raw=True)
def goto(dbg: Debugger, args: argparse.Namespace) -> None:
    if args.icount is None:
        raise CommandError("Argument required (an instruction count, `start` or `end`).")
    session = dbg.session
    word = args.icount.strip()
    if word == "start":
        target = 0
    elif word == "end":
        end = session.end_icount if session.end_icount is not None else session.recorded_end
        target = end if end is not None else 1 << 62
    else:
        target = dbg.count(word, what="instruction count")
    dbg.move(lambda: session.seek(target))


_p = parser("when", "Print the current position: the instruction count (icount).")


@command("when", parser=_p, category="reverse")
def when(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.console.line(f"Current icount: {dbg.session.icount}")

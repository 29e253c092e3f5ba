"""help (generated from the registry) and quit."""

from __future__ import annotations

import argparse

from replayvm.debugger.cmd_status import topics_help
from replayvm.debugger.commands import CATEGORIES, REGISTRY, command, parser
from replayvm.debugger.debugger import Debugger
from replayvm.debugger.format import table

_p = parser("help", "Describe all commands, or one command in full.")
_p.add_argument("command", nargs="?", metavar="COMMAND")


@command("help", aliases=("h",), parser=_p, category="support")
def help_(dbg: Debugger, args: argparse.Namespace) -> None:
    out = dbg.console
    if args.command is not None:
        cmd = REGISTRY.resolve(args.command)
        out.line(cmd.help())
        if cmd.name == "info":
            out.line("")
            out.lines(topics_help())
        return
    out.line("ReplayVM debugger commands (a unique prefix of a command is enough; an empty line")
    out.line("repeats the last stepping command). Positions are instruction counts (icount).")
    for category, title in CATEGORIES.items():
        commands = [c for c in REGISTRY.commands.values() if c.category == category]
        if not commands:
            continue
        out.line("")
        out.line(f"{title}:")
        rows = [(c.name + (f" ({', '.join(c.aliases)})" if c.aliases else ""), c.summary) for c in commands]
        out.lines(table(rows))
    out.line("")
    out.line('Type "help COMMAND" for its arguments.')


_p = parser("quit", "Leave the debugger (Ctrl-D does too).")


@command("quit", aliases=("q", "exit"), parser=_p, category="support")
def quit_(dbg: Debugger, args: argparse.Namespace) -> None:
    dbg.quit_requested = True

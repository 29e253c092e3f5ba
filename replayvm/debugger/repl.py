"""The interactive front end: a prompt_toolkit session around a Debugger.

History in ``$XDG_STATE_HOME/replayvm/history`` (else ``~/.replayvm_history``;
in memory when neither can be written), completion of command names, info
topics, symbols and ``$registers``, a bottom toolbar with the position (and
DIVERGED while a diversion lasts), ``patch_stdout`` so output never tears
the prompt. Ctrl-C at the prompt clears the line; while a command runs it
stops the guest at the next slice boundary (see Debugger.interruptible).
Ctrl-D quits. An empty line repeats the last stepping command.

Scripts (``-x``) and commands piped on stdin go through the same
:meth:`Debugger.execute`, without a prompt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, NestedCompleter, WordCompleter
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

from replayvm.debugger.cmd_status import INFO_TOPICS
from replayvm.debugger.commands import REGISTRY
from replayvm.debugger.context import register_names
from replayvm.debugger.debugger import Debugger
from replayvm.errors import ConfigError

STYLE = Style.from_dict(
    {
        "prompt": "bold",
        "prompt.diverged": "bold ansired",
        "bottom-toolbar": "noreverse bg:ansibrightblack fg:ansiwhite",
        "diverged": "bold bg:ansired fg:ansiwhite",
    }
)
# Commands whose argument is an address or expression: complete symbols and $registers.
EXPRESSION_COMMANDS = ("break", "tbreak", "print", "x", "watch", "rwatch", "awatch", "set", "disassemble", "list")


def history_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME")
    if state:
        return Path(state) / "replayvm" / "history"
    return Path.home() / ".replayvm_history"


class _QuietFileHistory(FileHistory):
    """A history file that goes quiet, not fatal, if it stops being writable."""

    def load_history_strings(self) -> Iterable[str]:
        try:
            return list(super().load_history_strings())
        except OSError:
            return []

    def store_string(self, string: str) -> None:
        try:
            super().store_string(string)
        except OSError:
            pass


def make_history(path: Path | None) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError:
        return InMemoryHistory()
    return _QuietFileHistory(str(path))


def make_completer(dbg: Debugger) -> Completer:
    names = dbg.symbols.names() + [f"${r}" for r in register_names(list(dbg.session.registers()))]
    expressions = WordCompleter(names, WORD=True)
    tree: dict[str, object] = {word: None for word in REGISTRY.words()}
    for cmd in REGISTRY.commands.values():
        words = (cmd.name, *cmd.aliases)
        if cmd.name in EXPRESSION_COMMANDS:
            tree.update(dict.fromkeys(words, expressions))
        elif cmd.name == "info":
            topics = {name: None for t in INFO_TOPICS.values() for name in (t.name, *t.aliases)}
            tree.update(dict.fromkeys(words, topics))
        elif cmd.name == "help":
            tree.update(dict.fromkeys(words, dict.fromkeys(REGISTRY.words())))
    return NestedCompleter.from_nested_dict(tree)  # type: ignore[arg-type]


class Repl:
    def __init__(
        self,
        dbg: Debugger,
        *,
        input: Input | None = None,
        output: Output | None = None,
        history: Path | None = None,
    ) -> None:
        self.dbg = dbg
        self.prompt_session: PromptSession[str] = PromptSession(
            history=make_history(history),
            completer=make_completer(dbg),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar,
            style=STYLE,
            input=input,
            output=output,
        )

    def message(self) -> FormattedText:
        if self.dbg.session.diverged:
            return FormattedText([("class:prompt.diverged", self.dbg.prompt)])
        return FormattedText([("class:prompt", self.dbg.prompt)])

    def toolbar(self) -> FormattedText:
        session = self.dbg.session
        end = session.end_icount if session.end_icount is not None else session.recorded_end
        rip = session.vcpu.rip
        label = self.dbg.label(rip)
        parts = [
            ("class:bottom-toolbar", f" icount {session.icount}" + (f" / {end}" if end is not None else "")),
            ("class:bottom-toolbar", f"   rip {rip:#x}" + (f" {label}" if label else "")),
        ]
        if session.at_end:
            parts.append(("class:bottom-toolbar", "   [end of recording]"))
        if session.diverged:
            parts.append(("class:bottom-toolbar", "   "))
            parts.append(("class:diverged", " DIVERGED "))
        return FormattedText(parts)

    def run(self) -> int:
        with patch_stdout(raw=True):
            while not self.dbg.quit_requested:
                try:
                    line = self.prompt_session.prompt(self.message)
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    self.dbg.console.line("quit")
                    break
                self.dbg.execute(line)
        return 0


def run_lines(dbg: Debugger, lines: Iterable[str], *, stop_on_error: bool) -> bool:
    """Commands without a prompt (a script, a pipe); False if any failed."""
    ok = True
    for line in lines:
        if dbg.quit_requested:
            break
        if not dbg.execute(line.rstrip("\n"), repeat=False):
            ok = False
            if stop_on_error:
                break
    return ok


def run_script(dbg: Debugger, path: str) -> bool:
    """``-x SCRIPT``: stops at the first failing command, as gdb does."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"cannot read script {path}: {e.strerror}") from None
    return run_lines(dbg, text.splitlines(), stop_on_error=True)


def run_stream(dbg: Debugger, stream: TextIO) -> bool:
    return run_lines(dbg, stream, stop_on_error=False)

"""The command registry: every debugger command is declared here, once.

A command is a function registered with :func:`command`, which carries its
name, aliases, category and an argparse parser (whose description is the
help text). ``help``, completion and dispatch all read this registry, so a
command cannot exist without its help. gdb's conventions apply: a unique
prefix of a name is enough (``disas``), ``x/4xg`` passes a /FMT suffix, and
commands whose argument is an expression get the rest of the line verbatim.
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from replayvm.errors import ReplayVMError

if TYPE_CHECKING:
    from replayvm.debugger.debugger import Debugger

Handler = Callable[["Debugger", argparse.Namespace], None]

CATEGORIES = {
    "running": "Running forwards",
    "reverse": "Running backwards",
    "breakpoints": "Breakpoints and watchpoints",
    "data": "Examining and changing data",
    "stack": "Code and the stack",
    "status": "Machine and recording status",
    "support": "Support",
}

_COMMAND_WORD = re.compile(r"\s*(?P<name>[A-Za-z][\w-]*)(?P<fmt>/\S*)?(?:\s+(?P<rest>.*))?\s*$", re.DOTALL)


class CommandError(ReplayVMError):
    """A command used wrongly: one line for the user."""


class CommandParser(argparse.ArgumentParser):
    """argparse that reports instead of exiting, and never prints by itself."""

    def __init__(self, name: str, description: str, usage: str | None = None) -> None:
        super().__init__(
            prog=name,
            usage=usage,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=False,
            allow_abbrev=False,
            exit_on_error=False,
        )

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise CommandError((message or f"{self.prog}: bad arguments").strip())


def parser(name: str, description: str, usage: str | None = None) -> CommandParser:
    """A command's parser; its description's first line is the summary ``help`` lists."""
    return CommandParser(name, description, usage)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    parser: CommandParser
    handler: Handler
    category: str
    repeatable: bool  # an empty line runs it again (the stepping commands)
    raw: bool  # the rest of the line is one argument (an expression)
    takes_format: bool  # accepts a /FMT suffix

    @property
    def summary(self) -> str:
        return (self.parser.description or "").strip().splitlines()[0]

    def help(self) -> str:
        text = self.parser.format_help().rstrip()
        if self.aliases:
            text += f"\n\nAliases: {', '.join(self.aliases)}"
        return text


class Registry:
    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}
        self._by_word: dict[str, Command] = {}

    def command(
        self,
        name: str,
        *,
        parser: CommandParser,
        category: str,
        aliases: tuple[str, ...] = (),
        repeatable: bool = False,
        raw: bool = False,
        takes_format: bool = False,
    ) -> Callable[[Handler], Handler]:
        if category not in CATEGORIES:
            raise ValueError(f"unknown command category {category!r}")

        def register(handler: Handler) -> Handler:
            cmd = Command(name, aliases, parser, handler, category, repeatable, raw, takes_format)
            for word in (name, *aliases):
                if word in self._by_word:
                    raise ValueError(f"command word {word!r} registered twice")
                self._by_word[word] = cmd
            self.commands[name] = cmd
            return handler

        return register

    def words(self) -> list[str]:
        """Names and aliases, for completion."""
        return sorted(self._by_word)

    def resolve(self, word: str) -> Command:
        """A command by name, alias, or unique prefix of a name."""
        found = self._by_word.get(word)
        if found is not None:
            return found
        matches = {cmd.name: cmd for w, cmd in self._by_word.items() if w.startswith(word)}
        if len(matches) == 1:
            return next(iter(matches.values()))
        if matches:
            raise CommandError(f'Ambiguous command "{word}": {", ".join(sorted(matches))}.')
        raise CommandError(f'Undefined command: "{word}".  Try "help".')

    def parse(self, line: str) -> tuple[Command, argparse.Namespace]:
        """The command a line names and its parsed arguments (``format`` holds
        the /FMT suffix, or None)."""
        m = _COMMAND_WORD.match(line)
        if m is None:
            raise CommandError(f'Undefined command: "{line.split()[0] if line.split() else line}".  Try "help".')
        cmd = self.resolve(m["name"])
        fmt = m["fmt"][1:] if m["fmt"] else None
        if fmt is not None and not cmd.takes_format:
            raise CommandError(f'Command "{cmd.name}" takes no /FMT suffix.')
        rest = (m["rest"] or "").strip()
        if cmd.raw:
            argv = ["--", rest] if rest else []
        else:
            argv = rest.split()
        try:
            args = cmd.parser.parse_args(argv)
        except argparse.ArgumentError as e:
            raise CommandError(f"{cmd.name}: {e}") from None
        args.format = fmt
        return cmd, args


REGISTRY = Registry()
command = REGISTRY.command

COMMAND_MODULES = ("cmd_running", "cmd_breakpoints", "cmd_data", "cmd_status", "cmd_support")


def load_commands() -> Registry:
    """Import the modules whose decorators fill the registry (once)."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"replayvm.debugger.{name}")
    return REGISTRY

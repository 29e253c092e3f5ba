"""The time-travel debugger's front end (DESIGN.md §6): ``replayvm debug``.

app.py          open a recording (or record a guest first), scripts, batch mode
repl.py         prompt_toolkit REPL: history, completion, toolbar, Ctrl-C
debugger.py     Debugger: runs command lines, reports stops, shared state
commands.py     the command registry (decorator: name, aliases, help, argparse)
cmd_*.py        the commands, by topic
expr.py         the expression language (a hand-written parser, never eval)
context.py      expressions against the live session: registers, memory, writes
symbols.py      ELF symbols (pyelftools); source.py: DWARF lines and source text
disasm.py       capstone disassembly with <symbol+offset>
frames.py       the frame-pointer backtrace
format.py       how values and state are printed; console.py: where
"""

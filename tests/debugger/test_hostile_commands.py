"""Any command line, however wrong, is a result or one error line: never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replayvm.debugger.commands import REGISTRY, load_commands
from tests.debugger.conftest import Driven

load_commands()
WORDS = sorted(set(REGISTRY.words()) - {"quit", "q", "exit"})
ARGS = [
    "",
    "1",
    "-1",
    "0",
    "99999999999999999999999",
    "$rax",
    "$rsp",
    "*$rsp",
    "kprintf",
    "kprintf+4",
    "*0",
    "*0xfffffffffffff000",
    "ticks,4",
    "if",
    "if $rax == 1",
    "=",
    "$rip = $rip",
    "memory",
    "/x",
    "registers",
    "b",
    "devices",
    "symbol",
    "(",
    ")",
    "'",
    "\\",
    "start",
    "end",
    "\x00",
    "é",
    ",",
]


@pytest.fixture(scope="module")
def shared(demo_rvr: Path) -> Driven:
    return Driven(demo_rvr)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    word=st.sampled_from(WORDS),
    fmt=st.sampled_from(["", "", "/x", "/4xg", "/s", "/i", "/zz", "/"]),
    args=st.lists(st.sampled_from(ARGS), max_size=4),
)
def test_command_lines_give_output_or_one_error_line(shared: Driven, word: str, fmt: str, args: list[str]) -> None:
    line = f"{word}{fmt} {' '.join(args)}"
    before = len(shared.err.getvalue())
    shared.dbg.execute(line, repeat=False)
    errors = shared.err.getvalue()[before:]
    assert "Internal error" not in errors and "Traceback" not in errors, (line, errors)
    assert errors.count("\n") <= 1, (line, errors)

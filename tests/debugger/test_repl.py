"""The prompt_toolkit REPL driven through a pipe, and Ctrl-C while a command runs."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from replayvm.debugger.repl import Repl, history_path, make_completer, make_history
from tests.debugger.conftest import Driven


def drive(d: Driven, text: str, history: Path | None = None) -> tuple[str, int]:
    """Type ``text`` at the prompt (then Ctrl-D); what the debugger printed, and the status."""
    start = len(d.out.getvalue())
    with create_pipe_input() as pipe:
        pipe.send_text(text)
        pipe.close()  # end of input: Ctrl-D
        with create_app_session(input=pipe, output=DummyOutput()):
            status = Repl(d.dbg, history=history).run()
    return d.out.getvalue()[start:], status


def icounts(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[icount (\d+)\]", text)]


def test_commands_typed_at_the_prompt_run_and_ctrl_d_quits(demo: Driven) -> None:
    out, status = drive(demo, "stepi\nwhen\n")
    assert status == 0
    assert out.splitlines()[0] == "0x0000000000100001 in pvh_start32 () [icount 1]"
    assert "Current icount: 1\n" in out
    assert out.endswith("quit\n")


def test_an_empty_line_repeats_the_last_stepping_command(demo: Driven) -> None:
    out, _ = drive(demo, "si 2\n\n\nwhen\n\n")
    assert icounts(out) == [2, 4, 6]
    assert out.count("Current icount: 6") == 1  # `when` is not repeated


def test_an_empty_line_repeats_continue_and_reverse_continue(demo: Driven) -> None:
    out, _ = drive(demo, "break kprintf\ncontinue\n\n\nreverse-continue\n\n")
    hits = icounts(out)
    assert len(hits) == 5 and hits[0] < hits[1] < hits[2]
    assert hits[3:] == [hits[1], hits[0]]


def test_an_empty_line_after_a_failed_command_does_nothing(demo: Driven) -> None:
    out, _ = drive(demo, "si\nbogus\n\nwhen\n")
    assert icounts(out) == [1]
    assert "Current icount: 1" in out
    assert demo.err.getvalue() == 'Undefined command: "bogus".  Try "help".\n'


def test_quit_command_ends_the_loop(demo: Driven) -> None:
    out, status = drive(demo, "quit\nstepi\n")
    assert status == 0 and icounts(out) == [] and demo.dbg.quit_requested


def test_history_is_kept_in_the_history_file(demo: Driven, tmp_path: Path) -> None:
    path = tmp_path / "state" / "history"
    drive(demo, "when\nsi\n", history=path)
    assert "when" in path.read_text() and "si" in path.read_text()
    assert isinstance(make_history(path), FileHistory)


def test_an_unwritable_history_file_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert isinstance(make_history(blocker / "history"), InMemoryHistory)
    assert isinstance(make_history(None), InMemoryHistory)


def test_history_path_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert history_path() == tmp_path / "replayvm" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert history_path() == Path.home() / ".replayvm_history"


def test_toolbar_and_prompt_show_position_symbol_and_diversion(demo: Driven) -> None:
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        repl = Repl(demo.dbg)
        demo.run("break kprintf", "continue")
        bar = "".join(text for _, text in repl.toolbar())
        assert f"icount {demo.dbg.session.icount} / " in bar
        assert "<kprintf>" in bar and "DIVERGED" not in bar
        demo.run("set $rax = 1")
        assert "DIVERGED" in "".join(text for _, text in repl.toolbar())
        assert "".join(text for _, text in repl.message()) == "(rvdb diverged) "


def completions(d: Driven, text: str) -> set[str]:
    completer = make_completer(d.dbg)
    return {c.text for c in completer.get_completions(Document(text), None)}  # type: ignore[arg-type]


def test_completion_of_commands_topics_symbols_and_registers(demo: Driven) -> None:
    assert {"reverse-continue", "reverse-stepi", "reverse-nexti", "reverse-finish"} <= completions(demo, "rev")
    assert "registers" in completions(demo, "info reg")
    assert "kprintf" in completions(demo, "break kpr")
    assert "$rax" in completions(demo, "print $ra")


def test_ctrl_c_stops_a_running_command_and_the_session_goes_on(demo: Driven) -> None:
    session = demo.dbg.session

    def interrupted_continue():  # type: ignore[no-untyped-def]
        signal.raise_signal(signal.SIGINT)  # as if Ctrl-C arrived while the guest runs
        return session.cont()

    stop = demo.dbg.move(interrupted_continue)
    assert stop.reason == "interrupted"
    assert "\nInterrupted.\n" in demo.out.getvalue()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert "End of the recording" in demo.run("continue")


def test_a_stale_interrupt_does_not_cut_the_next_command_short(demo: Driven) -> None:
    demo.dbg.session.interrupt()  # Ctrl-C that arrived after the previous run ended
    assert icounts(demo.run("stepi 5")) == [5]

"""Going backwards through the debugger: the behaviours a user relies on."""

from __future__ import annotations

import re
from pathlib import Path

from tests.debugger.conftest import Driven


def stop_icount(output: str) -> int:
    found = re.findall(r"\[icount (\d+)\]", output)
    assert found, output
    return int(found[-1])


def test_break_continue_then_reverse_continue_lands_at_the_previous_hit(demo: Driven) -> None:
    demo.run("break kprintf")
    first = stop_icount(demo.run("continue"))
    second = stop_icount(demo.run("continue"))
    third = stop_icount(demo.run("continue"))
    assert first < second < third
    out = demo.run("reverse-continue")
    assert "Breakpoint 1, " in out
    assert stop_icount(out) == second == demo.dbg.session.icount
    assert stop_icount(demo.run("rc")) == first
    assert "No more reverse-execution history." in demo.run("rc")
    assert demo.dbg.session.icount == 0


def test_reverse_stepi_then_stepi_returns_to_the_same_registers(demo: Driven) -> None:
    demo.run("break crc32_update", "continue", "stepi 40")
    before = demo.registers()
    here = demo.dbg.session.icount
    demo.run("reverse-stepi")
    assert demo.dbg.session.icount == here - 1
    assert demo.registers() != before
    demo.run("stepi")
    assert demo.registers() == before
    demo.run("rsi 7", "si 7")
    assert demo.registers() == before


def test_watch_then_reverse_continue_finds_the_last_write(demo: Driven) -> None:
    demo.run("watch ticks", "goto end")
    lines = demo.run("reverse-continue").splitlines()
    at = lines.index("Hardware watchpoint 1: ticks")
    assert lines[at + 1 : at + 4] == ["", "Old value = 4", "New value = 5"]
    assert " in timer_irq () " in lines[at + 4]
    assert demo.run("p *ticks") == "$1 = 5\n"
    demo.run("reverse-stepi")
    assert demo.run("p *ticks") == "$2 = 4\n"  # the stop is right after the write
    lines = demo.run("rc").splitlines()
    assert lines[lines.index("Hardware watchpoint 1: ticks") + 2 :][:2] == ["Old value = 3", "New value = 4"]


def test_writes_that_do_not_change_the_value_do_not_stop_a_watch(demo: Driven) -> None:
    # BSS clearing at boot writes zeros over the zero ticks: no change, no stop.
    demo.run("watch ticks", "goto end", "rc", "rc", "rc", "rc", "rc")
    assert "New value = 1" in demo.out.getvalue()
    assert "No more reverse-execution history." in demo.run("rc")


def test_a_diversion_shows_and_any_seek_undoes_it(demo: Driven) -> None:
    demo.run("break kprintf", "continue")
    rax = demo.registers()["rax"]
    here = demo.dbg.session.icount
    out = demo.run("set $rax = 1")
    assert out.startswith("Diverged from the recording")
    assert demo.dbg.prompt == "(rvdb diverged) "
    assert demo.dbg.session.diverged
    assert demo.registers()["rax"] == 1
    out = demo.run(f"goto {here}")
    assert "Back on the recording: the diversion was undone." in out
    assert demo.dbg.prompt == "(rvdb) "
    assert demo.registers()["rax"] == rax
    demo.run("set *ticks = 99", "reverse-stepi")
    assert not demo.dbg.session.diverged
    assert demo.run("p *ticks") == "$1 = 0\n"


def test_forward_guest_output_is_printed_once_per_run(demo: Driven) -> None:
    out = demo.run("break kprintf", "continue", "continue", "continue")
    assert out.count("demo: ReplayVM demo guest") == 1
    assert out.count("demo: 1. booted through PVH") == 1
    demo.run("rc")  # backwards prints nothing from the guest
    assert demo.run("continue").count("demo: 1. booted through PVH") == 1  # replayed again: shown again


def test_the_end_of_a_recording_stopped_by_ctrl_c_is_an_end_not_an_interrupt(interrupted_rvr: Path) -> None:
    d = Driven(interrupted_rvr)
    end = d.dbg.session.recorded_end
    assert "Breakpoint 1, " in d.run("break kprintf", "continue")
    out = d.run("delete", "continue", "break kprintf")
    assert "End of the recording: the recorded run was stopped by Ctrl-C here." in out
    assert "Interrupted." not in out
    assert d.dbg.session.icount == end
    out = d.run("reverse-continue")
    assert "Breakpoint 2, " in out and stop_icount(out) < end
    assert "[icount " in d.run("goto end") and "Interrupted." not in d.run("stepi")

"""Timeline invariants over random positions of a real recording (DESIGN.md §5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replayvm.guests import catalog
from replayvm.session.timeline import DebuggerError, DebugSession
from tests.session.conftest import record_guest

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("tl") / "demo.rvr"
    result, _ = record_guest(path, "demo")
    return path, result.icount


@pytest.fixture(scope="module")
def session(demo: tuple[Path, int]) -> DebugSession:
    return DebugSession.open(demo[0], checkpoint_interval=40_000)


def symbol(name: str) -> int:
    with open(catalog.image_path("demo"), "rb") as f:
        for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if sym.name == name:
                return sym["st_value"]
    raise KeyError(name)


def state(s: DebugSession) -> tuple[int, bytes]:
    return s.icount, s.machine.state_digest(ram=True)


@SETTINGS
@given(t=st.integers(min_value=0, max_value=790_000))
def test_seek_then_stepi_equals_seek_to_next(session: DebugSession, t: int) -> None:
    session.seek(t)
    session.stepi()
    after_step = state(session)
    session.seek(0)
    session.seek(t + 1)
    assert state(session) == after_step


@SETTINGS
@given(t=st.integers(min_value=1, max_value=790_000))
def test_reverse_stepi_then_stepi_returns_to_the_same_state(session: DebugSession, t: int) -> None:
    session.seek(t)
    before = state(session)
    session.reverse_stepi()
    assert session.icount == t - 1
    session.stepi()
    assert state(session) == before


@SETTINGS
@given(t=st.integers(min_value=0, max_value=790_000), via=st.integers(min_value=0, max_value=790_000))
def test_same_icount_by_different_paths_gives_same_state(session: DebugSession, t: int, via: int) -> None:
    session.seek(t)
    direct = state(session)
    session.seek(via)
    session.seek(t)
    assert state(session) == direct


def test_positions_match_a_straight_replay(demo: tuple[Path, int]) -> None:
    """Checkpoints and seeks never move an interrupt: a fresh straight run agrees."""
    fresh = DebugSession.open(demo[0], checkpoint_interval=10**9)
    timeline = DebugSession.open(demo[0], checkpoint_interval=25_000)
    for t in (650_000, 123_457, 400_001, 777_777):
        timeline.seek(t)
        fresh.seek(0)
        fresh.seek(t)
        assert state(timeline) == state(fresh)


def test_reverse_continue_finds_the_previous_breakpoint_hit(session: DebugSession) -> None:
    session.seek(0)
    bp = session.add_breakpoint(symbol("kprintf"))
    try:
        hits = [session.cont().icount for _ in range(4)]
        assert len(set(hits)) == 4 and hits == sorted(hits)
        assert session.vcpu.rip == symbol("kprintf")
        back = session.reverse_cont()
        assert (back.reason, back.icount, back.number) == ("breakpoint", hits[2], bp.number)
        assert session.reverse_cont().icount == hits[1]
    finally:
        session.delete(bp.number)


def test_conditional_breakpoint(session: DebugSession) -> None:
    session.seek(0)
    calls = session.add_breakpoint(symbol("kprintf"))
    first_two = [session.cont().icount for _ in range(2)]
    session.delete(calls.number)
    target = first_two[1]
    session.seek(0)
    cond = session.add_breakpoint(symbol("kprintf"), condition=lambda: session.icount >= 0 and False)
    assert session.cont().reason == "end"
    session.delete(cond.number)
    session.seek(0)
    only_second = session.add_breakpoint(
        symbol("kprintf"), condition=lambda: session.vcpu.current_icount() - 1 >= target
    )
    assert session.cont().icount == target
    session.delete(only_second.number)


def test_write_watchpoint_forward_and_reverse(session: DebugSession) -> None:
    ticks = symbol("ticks")
    session.seek(0)
    wp = session.add_watchpoint(ticks, 8, "write")
    try:

        def value() -> int:
            return int.from_bytes(session.read_memory(ticks, 8), "little")

        first = session.cont()
        while value() == 0:  # .bss clearing writes zeros first
            first = session.cont()
            assert first.reason == "watchpoint"
        value1 = value()
        second = session.cont()
        value2 = value()
        assert second.icount > first.icount and value2 == value1 + 1
        back = session.reverse_cont()
        assert back.icount == first.icount
        assert value() == value1
    finally:
        session.delete(wp.number)


def test_reverse_at_start_and_forward_at_end_stop_with_a_message(session: DebugSession, demo: tuple[Path, int]) -> None:
    session.seek(0)
    stop = session.reverse_stepi()
    assert (stop.reason, stop.icount) == ("start", 0)
    assert session.reverse_cont().reason == "start"
    end = session.seek(10**12)
    assert end.reason == "end" and session.icount == demo[1]
    assert session.stepi().reason == "end"
    assert session.cont().reason == "end"


def test_diversion_is_undone_by_any_seek(session: DebugSession) -> None:
    session.seek(300_000)
    before = state(session)
    session.set_register("rax", 0x1234)
    session.write_memory(symbol("ticks"), b"\x99")
    assert session.diverged and session.registers()["rax"] == 0x1234
    session.seek(300_000)
    assert not session.diverged
    assert state(session) == before


def test_finish_returns_to_the_caller(session: DebugSession) -> None:
    session.seek(0)
    bp = session.add_breakpoint(symbol("kprintf"))
    session.cont()
    session.delete(bp.number)
    ret, cfa = session.frame_return()
    stop = session.finish()
    assert stop.reason == "step" and session.vcpu.rip == ret
    assert session.registers()["rsp"] == cfa
    back = session.reverse_finish()
    assert back.reason == "step"
    insn = session.instruction_at(session.vcpu.rip)
    assert insn is not None and insn.mnemonic == "call"


def test_nexti_steps_over_calls(session: DebugSession) -> None:
    session.seek(0)
    bp = session.add_breakpoint(symbol("kprintf"))
    session.cont()
    session.delete(bp.number)
    session.finish()
    session.reverse_stepi()  # back onto the ret? no: onto the last instruction before returning
    session.reverse_finish()  # at the call instruction
    call_rip = session.vcpu.rip
    insn = session.instruction_at(call_rip)
    assert insn is not None and insn.mnemonic == "call"
    start = session.icount
    session.nexti()
    assert session.vcpu.rip == call_rip + insn.size
    assert session.icount > start + 1
    session.reverse_nexti()
    assert session.icount == start and session.vcpu.rip == call_rip


def test_checkpoints_stay_within_the_memory_budget(demo: tuple[Path, int]) -> None:
    budget = (64 << 20) + (2 << 20)
    s = DebugSession.open(demo[0], checkpoint_interval=10_000, checkpoint_memory=budget)
    s.seek(demo[1])
    assert len(s.checkpoints()) >= 3
    assert s.store.memory <= budget + (1 << 20)
    # thinned checkpoints still reproduce exact states
    fresh = DebugSession.open(demo[0], checkpoint_interval=10**9)
    for t in (5_000, 333_333, 700_000):
        s.seek(t)
        fresh.seek(0)
        fresh.seek(t)
        assert state(s) == state(fresh)


def test_bad_addresses_are_debugger_errors(session: DebugSession) -> None:
    with pytest.raises(DebuggerError, match="Cannot access memory"):
        session.read_memory(0xDEAD_0000_0000, 8)
    with pytest.raises(DebuggerError, match="No breakpoint number"):
        session.delete(999)


DEMAND_PAGE_WORD = 0x40000040  # demo.c: mapped on a page fault to a page from the pool


def watch_hits(session: DebugSession, until: int) -> list[tuple[int, int]]:
    hits = []
    while (stop := session.cont()).reason == "watchpoint":
        hits.append((stop.icount, stop.rip))
        if stop.icount >= until:
            break
    return hits


def test_physical_watchpoint_sees_the_page_through_every_mapping(session: DebugSession) -> None:
    session.seek(0)
    virtual = session.add_watchpoint(DEMAND_PAGE_WORD, 4, "write")
    try:
        store = session.cont()
    finally:
        session.delete(virtual.number)
    assert store.reason == "watchpoint"
    paddr = session.translate(DEMAND_PAGE_WORD)
    assert paddr != DEMAND_PAGE_WORD and session.machine.ram.contains(paddr, 4)
    assert session.read_memory(paddr, 4, physical=True) == (42).to_bytes(4, "little")

    session.seek(0)
    physical = session.add_watchpoint(paddr, 4, "write", physical=True)
    try:
        hits = watch_hits(session, store.icount)
        # The pool page is cleared through the identity map first, then the
        # demand-paged store writes it through 0x40000040: both are seen.
        assert hits[-1] == (store.icount, store.rip)
        assert len(hits) >= 2 and all(icount < store.icount for icount, _ in hits[:-1])
        end = session.seek(10**12)
        assert end.reason == "end"
        back = session.reverse_cont()
        assert (back.reason, back.icount, back.rip) == ("watchpoint", store.icount, store.rip)
    finally:
        session.delete(physical.number)

    # The same number as a virtual address is the identity mapping only: the
    # store through 0x40000040 reaches the same bytes but is not reported.
    session.seek(0)
    identity = session.add_watchpoint(paddr, 4, "write")
    try:
        seen = watch_hits(session, store.icount)
    finally:
        session.delete(identity.number)
    assert seen and store.icount not in [icount for icount, _ in seen]
    assert [icount for icount, _ in seen] == [icount for icount, _ in hits[:-1]]


@pytest.mark.parametrize("engine", ["native", "count"])
def test_virtual_watchpoint_follows_a_cr3_load_inside_a_slice(
    demo: tuple[Path, int], engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # demo.c loads CR3 and then stores through the new mapping of 0x40000040 with
    # no slice boundary in between (replay ends slices only where it must): the
    # vCPU must end the slice at the new address space for the watch to walk it.
    from replayvm.engine import icount
    from replayvm.engine.native import native_available

    if engine == "native" and not native_available()[0]:
        pytest.skip("native counter unavailable")
    monkeypatch.setattr(icount, "DEFAULT_ENGINE", engine)
    session = DebugSession.open(demo[0])
    assert session.vcpu.counter.name == engine
    session.add_watchpoint(DEMAND_PAGE_WORD, 4, "write")
    store = session.cont()
    assert store.reason == "watchpoint"
    assert session.read_memory(DEMAND_PAGE_WORD, 4) == (42).to_bytes(4, "little")


def test_physical_watchpoint_outside_ram_is_refused(session: DebugSession) -> None:
    with pytest.raises(DebuggerError, match="not in guest RAM"):
        session.add_watchpoint(1 << 40, 4, physical=True)

"""The native counter against count mode, instruction by instruction (issue 9).

Each case runs the same code on two fresh engines, one counted by
:class:`CountModeCounter` and one by :class:`NativeCounter`, with the same
hooks; every hook records what the counter says (``in_slice()``), and the
slices' results and the final registers must be identical. The cases are the
ones where a translation block is left early or counted unusually: faults,
``int n``, #UD, HLT, string instructions cut by the budget, a one-instruction
loop, stops from IN/OUT hooks in the middle of a block, CPUID/RDTSC/MMIO
positions, stores into the running block, and engine errors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_BLOCK,
    UC_HOOK_CODE,
    UC_HOOK_INSN,
    UC_HOOK_INSN_INVALID,
    UC_HOOK_INTR,
    UC_HOOK_MEM_WRITE,
    UC_MODE_64,
    Uc,
    UcError,
)
from unicorn.x86_const import (
    UC_X86_INS_CPUID,
    UC_X86_INS_IN,
    UC_X86_INS_OUT,
    UC_X86_INS_RDTSC,
    UC_X86_REG_RAX,
    UC_X86_REG_RCX,
    UC_X86_REG_RDX,
    UC_X86_REG_RFLAGS,
    UC_X86_REG_RIP,
    UC_X86_REG_RSP,
)

from replayvm.engine import icount, native
from replayvm.engine.icount import CountModeCounter, make_counter
from replayvm.engine.uc_abi import RAW_INSN_CB, add_raw_insn_hook
from replayvm.errors import EngineError

AVAILABLE, WHY = native.native_available()
needs_native = pytest.mark.skipif(not AVAILABLE, reason=f"native counter unavailable: {WHY}")

CODE = 0x1000
MMIO = 0x20000
STACK = 0x8000
REGS = (UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSP, UC_X86_REG_RIP, UC_X86_REG_RFLAGS)


def engine(kind: str, code: bytes) -> tuple[Uc, object]:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, 0x10000)
    uc.ctl_exits_enabled(True)
    uc.ctl_set_exits([])
    uc.mem_write(CODE, code)
    uc.reg_write(UC_X86_REG_RSP, STACK)
    uc.reg_write(UC_X86_REG_RIP, CODE)
    if kind == "native-calls":  # every block calls the hook (no inline counting)
        return uc, native.NativeCounter(uc, patching=False)
    counter = make_counter(uc, kind)
    assert counter.name == kind
    return uc, counter


class Probe:
    """Hooks that record (what, counter.in_slice()) and act like a VMM."""

    def __init__(self, uc: Uc, counter: object, *, stop_ports: frozenset[int] = frozenset()) -> None:
        self.uc, self.counter, self.seen = uc, counter, []
        self.stop_ports = stop_ports
        uc.hook_add(UC_HOOK_INTR, self.on_intr)
        uc.hook_add(UC_HOOK_INSN_INVALID, self.on_invalid)
        uc.hook_add(UC_HOOK_INSN, self.on_in, None, 1, 0, UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, self.on_out, None, 1, 0, UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INSN, self.on_cpuid, None, 1, 0, UC_X86_INS_CPUID)
        self._rdtsc = RAW_INSN_CB(self.on_rdtsc)
        add_raw_insn_hook(uc, UC_X86_INS_RDTSC, self._rdtsc)
        uc.mmio_map(MMIO, 0x1000, self.on_mmio_read, None, self.on_mmio_write, None)

    def note(self, what: object, *, mmio: bool = False) -> None:
        self.seen.append((what, self.counter.in_slice(mmio)))  # type: ignore[attr-defined]

    def on_intr(self, uc: Uc, intno: int, _ud: object) -> None:
        rip = uc.reg_read(UC_X86_REG_RIP)
        self.note(("intr", intno, rip))
        if intno == 0:  # #DE: skip the 2-byte division
            uc.reg_write(UC_X86_REG_RIP, rip + 2)

    def on_invalid(self, uc: Uc, _ud: object) -> bool:
        rip = uc.reg_read(UC_X86_REG_RIP)
        self.note(("ud", rip))
        uc.reg_write(UC_X86_REG_RIP, rip + 2)  # ud2
        return True

    def on_in(self, uc: Uc, port: int, size: int, _ud: object) -> int:
        self.note(("in", port))
        return 0x5A

    def on_out(self, uc: Uc, port: int, size: int, value: int, _ud: object) -> None:
        self.note(("out", port, value))
        if port in self.stop_ports:
            self.counter.mark_stop()  # type: ignore[attr-defined]
            uc.emu_stop()

    def on_cpuid(self, uc: Uc, _ud: object) -> int:
        self.note("cpuid")
        return 1

    def on_rdtsc(self, _uch: object, _ud: object) -> int:
        self.note("rdtsc")
        self.uc.reg_write(UC_X86_REG_RAX, self.counter.in_slice())  # type: ignore[attr-defined]
        self.uc.reg_write(UC_X86_REG_RDX, 0)
        return 1

    def on_mmio_read(self, uc: Uc, offset: int, size: int, _ud: object) -> int:
        self.note(("mmio-r", offset), mmio=True)
        return offset

    def on_mmio_write(self, uc: Uc, offset: int, size: int, value: int, _ud: object) -> None:
        self.note(("mmio-w", offset, value), mmio=True)


def run_both(
    code: bytes, budgets: list[int], *, stop_ports: frozenset[int] = frozenset(), inline: bool = False
) -> list[object]:
    """Run ``code`` in slices of ``budgets`` under count mode and the native
    counter, with blocks counting inline in their own code where Unicorn
    allows it (the default) and with every block calling the hook; return
    count mode's observations after asserting the others' are the same.
    ``inline``: blocks run often enough that some must have counted inline."""
    results = {}
    patched = 0
    for kind in ("count", "native", "native-calls"):
        uc, counter = engine(kind, code)
        probe = Probe(uc, counter, stop_ports=stop_ports)
        slices = []
        for budget in budgets:
            try:
                got = counter.run(uc.reg_read(UC_X86_REG_RIP), budget)  # type: ignore[attr-defined]
            except UcError as e:
                got = ("error", e.errno, counter.in_slice())  # type: ignore[attr-defined]
            slices.append((got, counter.stop_count, uc.reg_read_batch(REGS)))  # type: ignore[attr-defined]
            if got[0] == "error":
                break
        results[kind] = (probe.seen, slices)
        if kind != "count":
            stats = counter.stats()  # type: ignore[attr-defined]
            assert stats["inexact"] == 0
            if kind == "native-calls":
                assert stats["patched"] == 0
            else:
                patched = stats["patched"]
    assert results["native"] == results["native-calls"] == results["count"]
    if inline and native.native_layout().patching:
        assert patched > 0
    return results["count"][0]


pytestmark = needs_native

NOPS = b"\x90" * 6
HLT = b"\xf4"


def test_native_layout_is_found_and_cached() -> None:
    assert native.native_layout() is native.native_layout()


def test_landing_in_the_middle_of_a_block_and_at_its_edges() -> None:
    code = NOPS * 4 + HLT
    for budget in range(1, 27):
        run_both(code, [budget, 30])


def test_hlt_as_the_last_instruction_of_the_budget_is_a_halt() -> None:
    run_both(NOPS + HLT, [7])
    run_both(NOPS + HLT, [6, 1])


def test_divide_error_in_the_middle_of_a_block_counts_the_faulting_instruction() -> None:
    code = b"\x90\x31\xc9\xf7\xf1" + NOPS + HLT  # nop; xor ecx,ecx; div ecx
    seen = run_both(code, [100])
    assert seen == [(("intr", 0, CODE + 3), 3)]
    for budget in range(1, 12):
        run_both(code, [budget, 100])


def test_int_n_and_int3_count_themselves_and_leave_rip_after() -> None:
    code = b"\x90\xcd\x80\x90\xcc" + NOPS + HLT
    assert run_both(code, [100]) == [(("intr", 0x80, CODE + 3), 2), (("intr", 3, CODE + 5), 4)]
    for budget in range(1, 6):
        run_both(code, [budget, 100])


def test_invalid_opcode_in_the_middle_of_a_block() -> None:
    code = b"\x90\x90\x0f\x0b" + NOPS + HLT  # ud2
    assert run_both(code, [100]) == [(("ud", CODE + 2), 3)]
    for budget in range(1, 6):
        run_both(code, [budget, 100])


def test_rep_string_instruction_cut_by_the_budget() -> None:
    # mov ecx, 9; lea rdi, [rip+0x100]; rep stosb; nop; hlt
    code = b"\xb9\x09\x00\x00\x00" + b"\x48\x8d\x3d\x00\x01\x00\x00" + b"\xf3\xaa" + b"\x90" + HLT
    for budget in range(1, 16):
        run_both(code, [budget, budget, 100])


def test_one_instruction_loop_cut_anywhere() -> None:
    code = b"\xb9\x20\x00\x00\x00" + b"\xe2\xfe" + HLT  # mov ecx, 32; 1: loop 1b; hlt
    for budget in (1, 2, 3, 17, 33, 34, 35):
        run_both(code, [budget, 7, 100])


def test_out_hook_stop_in_the_middle_of_a_block_ends_the_slice_right_after_it() -> None:
    # nop; mov al, 1; out 0x80, al; nop x6; out 0xf4, al; nop; hlt
    code = b"\x90\xb0\x01\xe6\x80" + NOPS + b"\xe6\xf4\x90" + HLT
    seen = run_both(code, [100, 100, 100], stop_ports=frozenset({0x80, 0xF4}))
    assert seen == [(("out", 0x80, 1), 3), (("out", 0xF4, 1), 7)]


def test_in_cpuid_rdtsc_positions_in_the_middle_of_blocks() -> None:
    # nop; in al, 0x61; nop; cpuid; nop; rdtsc; nop; in al, dx; hlt
    code = b"\x90\xe4\x61\x90\x0f\xa2\x90\x0f\x31\x90\xec" + HLT
    assert [n for _w, n in run_both(code, [100])] == [2, 4, 6, 8]
    for budget in range(1, 10):
        run_both(code, [budget, 100])


def test_mmio_positions_although_rip_is_stale_there() -> None:
    # nop; mov eax,[MMIO]; nop; nop; mov [MMIO+8], eax; nop; hlt
    code = b"\x90\x8b\x04\x25\x00\x00\x02\x00\x90\x90\x89\x04\x25\x08\x00\x02\x00\x90" + HLT
    assert [n for _w, n in run_both(code, [100])] == [2, 5]


def test_store_into_the_running_block_counts_like_count_mode() -> None:
    # mov al, 0x90; mov [rip], al; int3 (patched to nop before it runs); nop; hlt
    code = bytes.fromhex("b090880500000000cc90") + HLT
    seen = run_both(code, [100])
    assert seen == []  # the int3 was rewritten before it ran
    for budget in range(1, 8):
        run_both(code, [budget, 100])


def test_store_into_the_running_block_in_a_loop() -> None:
    # mov ecx, 5; 1: mov [rip+1], cl; add eax, 0x11; dec ecx; jnz 1b; hlt
    code = bytes.fromhex("b905000000880d0100000083c011ffc975f1") + HLT
    for budget in range(2, 30, 3):
        run_both(code, [budget, budget, 200])


def test_fetch_from_unmapped_memory_is_an_error_at_the_same_count() -> None:
    code = b"\x90\x90\x48\xb8\x00\x00\x00\x00\x01\x00\x00\x00\xff\xe0"  # movabs rax, 1<<32; jmp rax
    run_both(code, [100])


def test_read_of_unmapped_memory_is_an_error_at_the_same_count() -> None:
    code = b"\x90\x90\x8b\x04\x25\x00\x00\x10\x00\x90" + HLT  # mov eax, [0x100000]
    run_both(code, [100])


# -- blocks that count inline (their hook call rewritten after their first run) --------
# mov ecx, 6; 1: <body>; dec ecx; jnz 1b; hlt -- the body runs six times.


def _loop(body: bytes) -> bytes:
    back = -(len(body) + 4)
    return b"\xb9\x06\x00\x00\x00" + body + b"\xff\xc9\x75" + (back & 0xFF).to_bytes(1, "little") + HLT


def test_landing_anywhere_in_blocks_that_count_inline() -> None:
    code = _loop(NOPS)
    for budget in range(1, 52):
        run_both(code, [budget, 1, budget, 100], inline=True)


def test_positions_in_blocks_that_count_inline() -> None:
    # nop; in al, 0x61; mov eax, [MMIO]; nop; mov [MMIO+8], eax; cpuid; nop
    body = b"\x90\xe4\x61\x8b\x04\x25\x00\x00\x02\x00\x90\x89\x04\x25\x08\x00\x02\x00\x0f\xa2\x90"
    seen = run_both(_loop(body), [1000], inline=True)
    assert [n for (what, *_), n in seen if what == "mmio-r"] == [4 + 9 * i for i in range(6)]
    for budget in (2, 5, 9, 13, 30):
        run_both(_loop(body), [budget, budget, 1000], inline=True)


def test_stops_in_blocks_that_count_inline() -> None:
    # nop; mov al, 1; out 0x80, al (stops); nop; in al, 0x61; nop
    body = b"\x90\xb0\x01\xe6\x80\x90\xe4\x61\x90"
    run_both(_loop(body), [1000] * 8, stop_ports=frozenset({0x80}), inline=True)
    for budget in (3, 4, 7, 8, 11):
        run_both(_loop(body), [budget] * 12 + [1000], stop_ports=frozenset({0x80}), inline=True)


def test_exceptions_in_blocks_that_count_inline() -> None:
    # A hook that writes RIP makes Unicorn leave the next block through
    # cpu_loop_exit, which resumes at env->eip: the store of the block's PC
    # that inline counting drops must be made by its slow path.
    # nop; ud2 (skipped); nop; int3; nop
    body = b"\x90\x0f\x0b\x90\xcc\x90"
    run_both(_loop(body), [1000], inline=True)
    for budget in (2, 5, 6, 9, 13):
        run_both(_loop(body), [budget] * 12 + [1000], inline=True)


def test_stores_into_blocks_that_count_inline() -> None:
    # mov [rip+2], cl (rewrites the immediate of the next instruction); add eax, imm8
    for budget in range(1, 12):
        run_both(_loop(bytes.fromhex("880d0200000083c011")), [budget, budget, 200], inline=True)


def test_blocks_over_127_instructions_keep_calling_the_hook() -> None:
    code = _loop(b"\x90" * 120) + b"\x90" * 200 + HLT
    for budget in (1, 100, 250, 700, 1000):
        run_both(code, [budget, 1000])
    if not native.native_layout().patching:
        pytest.skip("Unicorn's code buffer is not writable here: no block counts inline")
    _uc, counter = engine("native", b"\x90" * 200 + b"\xeb\xfe")  # 200 nops, then jmp . (1 instruction)
    counter.run(CODE, 1000)  # type: ignore[attr-defined]
    stats = counter.stats()  # type: ignore[attr-defined]
    assert stats["unpatchable"] >= 1 and stats["patched"] >= 1


@pytest.mark.skipif(
    AVAILABLE and not native.native_layout().patching,
    reason="Unicorn's code buffer is not writable here: no block counts inline",
)
def test_closing_the_counter_drops_the_blocks_that_count_inline() -> None:
    uc, counter = engine("native", _loop(NOPS))
    assert counter.run(CODE, 1000) == (1 + 6 * 8 + 1, True)  # type: ignore[attr-defined]
    assert counter.stats()["patched"] > 0  # type: ignore[attr-defined]
    counter.close()  # type: ignore[attr-defined]
    del uc._replayvm_native  # type: ignore[attr-defined]  # the C counter and its state are freed
    uc.reg_write(UC_X86_REG_RIP, CODE)
    uc.emu_start(CODE, icount.UNTIL_NEVER)  # runs freshly translated code, not code writing freed memory
    assert uc.reg_read(UC_X86_REG_RIP) == CODE + len(_loop(NOPS))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_random_budgets_on_a_mixed_snippet(budgets: list[int]) -> None:
    code = (
        b"\xb9\x06\x00\x00\x00"  # mov ecx, 6
        b"\x90\xe4\x61\x90"  # 1: nop; in al, 0x61; nop
        b"\x48\x8d\x3d\x00\x02\x00\x00\xf3\xaa"  # lea rdi, [rip+0x200]; rep stosb (ecx)
        b"\xb9\x03\x00\x00\x00\x31\xd2\xf7\xf2"  # mov ecx, 3; xor edx, edx; div edx (#DE, skipped)
        b"\x0f\x31\x90\x0f\x0b\x90"  # rdtsc; nop; ud2 (skipped); nop
        b"\xe2\xfe"  # loop .
        b"\xe6\xf4\x90" + HLT  # out 0xf4 (stops), nop, hlt
    )
    run_both(code, [*budgets, 1000], stop_ports=frozenset({0xF4}))


# -- the counter's contract --------------------------------------------------------------


def test_counter_must_exist_before_other_hooks() -> None:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.hook_add(UC_HOOK_INTR, lambda *a: None)
    with pytest.raises(EngineError, match="before any hook"):
        native.NativeCounter(uc)


def test_a_second_block_hook_is_refused_loudly_not_counted_wrongly() -> None:
    uc, counter = engine("native", NOPS + HLT)
    uc.hook_add(UC_HOOK_BLOCK, lambda *a: None)
    with pytest.raises(EngineError, match="exactly"):
        counter.run(CODE, 100)  # type: ignore[attr-defined]


def debugger_positions(kind: str, code: bytes) -> list[tuple[str, int]]:
    """A breakpoint (code hook) and a watchpoint (memory hook) note their icount."""
    uc, counter = engine(kind, code)
    notes: list[tuple[str, int]] = []
    uc.hook_add(UC_HOOK_CODE, lambda *a: notes.append(("code", counter.in_slice())), None, CODE + 9, CODE + 9)
    uc.hook_add(UC_HOOK_MEM_WRITE, lambda *a: notes.append(("mem", counter.in_slice())))
    counter.run(CODE, 100)  # type: ignore[attr-defined]
    return notes


def test_code_and_memory_hooks_of_a_debugger_see_count_mode_positions() -> None:
    code = b"\x90\x90\x89\x04\x25\x00\x30\x00\x00\x90\x90" + HLT  # mov [0x3000], eax
    assert debugger_positions("native", code) == debugger_positions("count", code) == [("mem", 3), ("code", 4)]


def test_stop_count_set_by_a_hook_is_honoured() -> None:
    """Vcpu.debug_stop sets stop_count itself and stops before an instruction."""
    results = {}
    for kind in ("count", "native"):
        uc, counter = engine(kind, NOPS * 2 + HLT)

        def on_code(uc: Uc, address: int, size: int, _ud: object, counter: object = counter) -> None:
            counter.stop_count = counter.in_slice() - 1  # type: ignore[attr-defined]
            uc.emu_stop()

        uc.hook_add(UC_HOOK_CODE, on_code, None, CODE + 8, CODE + 8)
        results[kind] = (counter.run(CODE, 100), uc.reg_read(UC_X86_REG_RIP))  # type: ignore[attr-defined]
    assert results["native"] == results["count"] == ((8, True), CODE + 8)


def count_mode_window(uc: Uc, counter: CountModeCounter) -> None:
    """What Vcpu._on_window_block does in count mode."""
    from replayvm.engine.context import CpuContext
    from replayvm.engine.uc_abi import HF_INHIBIT_IRQ_MASK, layout

    def on_block(uc: Uc, address: int, size: int, _ud: object) -> None:
        if (
            uc.reg_read(UC_X86_REG_RFLAGS) & 0x200
            and counter.stop_count is None
            and not CpuContext(uc, layout()).hflags & HF_INHIBIT_IRQ_MASK
        ):
            counter.stop_count = counter.in_slice()
            uc.emu_stop()

    uc.hook_add(UC_HOOK_BLOCK, on_block)


@pytest.mark.parametrize(
    "code",
    [
        b"\xfa\x90\x90\xfb\x90\x90\x90" + HLT,  # cli; nop; nop; sti; nop (shadow); nop; nop; hlt
        b"\xfb\xf4\x90" + HLT,  # sti; hlt: the HLT runs in the shadow
        b"\x9c\x58\x0d\x00\x02\x00\x00\x50\x9d\x90" + HLT,  # pushf; pop rax; or eax, IF; push rax; popf
    ],
)
def test_interrupt_window_stops_where_the_vcpu_block_hook_stops(code: bytes) -> None:
    results = {}
    for kind in ("count", "native"):
        uc, counter = engine(kind, code)
        uc.reg_write(UC_X86_REG_RFLAGS, 0x2)  # IF=0
        if kind == "native":
            counter.set_interrupt_window(True)  # type: ignore[attr-defined]
        else:
            count_mode_window(uc, counter)  # type: ignore[arg-type]
        first = counter.run(CODE, 100)  # type: ignore[attr-defined]
        results[kind] = (first, counter.stop_count, uc.reg_read(UC_X86_REG_RIP))  # type: ignore[attr-defined]
    assert results["native"] == results["count"]
    assert results["native"][1] is not None or code[1] == 0xF4


def test_budget_must_be_positive() -> None:
    _uc, counter = engine("native", HLT)
    with pytest.raises(ValueError):
        counter.run(CODE, 0)  # type: ignore[attr-defined]


# -- the factory -------------------------------------------------------------------------


def test_make_counter_falls_back_to_count_mode_with_one_notice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(native, "_nativecount", None)
    monkeypatch.setattr(native, "_IMPORT_ERROR", "no C compiler")
    native.native_layout.cache_clear()
    monkeypatch.setattr(icount, "_notified", set())
    try:
        first = make_counter(Uc(UC_ARCH_X86, UC_MODE_64), "native")
        second = make_counter(Uc(UC_ARCH_X86, UC_MODE_64), "native")
    finally:
        native.native_layout.cache_clear()
    assert isinstance(first, CountModeCounter) and isinstance(second, CountModeCounter)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "using the count engine" in err and "no C compiler" in err


def test_without_a_c_compiler_the_build_succeeds_and_says_so(tmp_path: Path) -> None:
    """setup.py's optional extension: CC=false (no compiler) still builds the package."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "replayvm" / "engine").mkdir(parents=True)
    shutil.copy(root / "setup.py", tmp_path)
    shutil.copy(root / "pyproject.toml", tmp_path)
    shutil.copytree(root / "replayvm" / "engine" / "_native", tmp_path / "replayvm" / "engine" / "_native")
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tmp_path,
        env={**os.environ, "CC": "false"},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "native counter not built" in done.stdout and "count engine will be used" in done.stdout
    assert not list((tmp_path / "replayvm" / "engine").glob("_nativecount*.so"))


def test_make_counter_rejects_unknown_engines() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        make_counter(Uc(UC_ARCH_X86, UC_MODE_64), "turbo")


def test_a_new_native_counter_replaces_the_old_one_on_the_same_engine() -> None:
    uc, first = engine("native", NOPS + HLT)
    second = native.NativeCounter(uc)
    assert second.run(CODE, 100) == (7, True)
    assert first.stats()["slow_blocks"] == 0  # type: ignore[attr-defined]  # its hooks are gone


def test_engine_benchmark_runs_every_engine_to_the_same_count() -> None:
    from replayvm.engine.nativebench import bench_engines
    from replayvm.guests import catalog

    guest = catalog.get("hello")
    result = bench_engines(guest.image.read_bytes(), guest.cmdline)
    engines = [side["engine"] for side in result["sides"]]  # type: ignore[index]
    calls = ["native-calls"] if native.native_layout().patching else []
    assert engines == ["free", "hook-floor", "count", "native", *calls]
    assert result["instructions"] > 10_000 and "native_vs_free" in result  # type: ignore[operator]
    assert "hook_floor_vs_free" in result  # type: ignore[operator]


def test_a_benchmark_side_that_fails_is_a_one_line_error(tmp_path: Path) -> None:
    from replayvm.engine.nativebench import in_fresh_process

    with pytest.raises(EngineError, match=r"benchmark side `free` failed: .*No such file"):
        in_fresh_process("replayvm.engine.nativebench", ["free", str(tmp_path / "missing"), "", "64"])
    with pytest.raises(EngineError, match=r"benchmark side `free` failed: usage"):
        in_fresh_process("replayvm.engine.nativebench", ["free"])

"""Free-running Unicorn, count mode and the native counter on one image, in one run.

Each side boots the image bare (PVH entry state, RAM, no devices): an IN
hook answers all-ones so serial polling finds the transmitter ready, and an
OUT to isa-debug-exit (0xf4) ends the run. The free-running side has no
counter at all (it cannot stop at an instruction count, so every side runs
the guest to its exit); count mode and native mode run it in slices of
``slice_insns`` and must agree on the instruction count. The "hook floor"
side runs free with one native UC_HOOK_BLOCK callback that does nothing:
the least any block-hook counter can cost, so ``native`` is read against
it. Rates are printed by ``replayvm bench``; tests never assert on them.

The same run of the compute guest takes 0.44 s to 0.75 s from one process
to the next (free-running and native alike), and later sides of one process
run on a different heap. Most of that spread is a first-engine effect: in a
process's first Unicorn engine with a CPU the guest ran 0.63-0.75 s, in any
engine made while an earlier one was still open 0.44-0.59 s (2-vCPU AMD EPYC
VM, Unicorn 2.1.4; no page faults, no system time, and pinning the stack's
or the heap's offsets changed nothing). The first engine's code buffer lies
within 2 GiB of libunicorn, so TCG calls its helpers directly; a later
one's lies further, so through each block's constant pool -- but far
direct calls alone time the same in a micro-benchmark: the cause is not
found. So every
side runs in fresh Python processes (:func:`in_fresh_process`) that prepare
the same way -- native calibration, then one engine kept open and never
timed -- and the fastest of ``repeat`` runs counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, UC_PROT_ALL, Uc
from unicorn.x86_const import UC_X86_INS_IN, UC_X86_INS_OUT, UC_X86_REG_EBX, UC_X86_REG_RIP

from replayvm.boot.pvh import plan_pvh_boot
from replayvm.engine.icount import UNTIL_NEVER, CountModeCounter
from replayvm.engine.memory import GuestRam
from replayvm.errors import EngineError
from replayvm.host import monotonic

DEBUG_EXIT_PORT = 0xF4


@dataclass(frozen=True, slots=True)
class Rate:
    """One benchmark side: ``name`` ran ``instructions`` in ``seconds``."""

    name: str
    instructions: int
    seconds: float

    @property
    def mips(self) -> float:
        return self.instructions / self.seconds / 1e6 if self.seconds > 0 else 0.0


Progress = Callable[[Rate, int, int], None]  # a run that ended, its round, the rounds


def keep_best(best: dict[str, Rate], rate: Rate) -> None:
    """Keep the fastest run of each side in ``best``."""
    if rate.name not in best or rate.seconds < best[rate.name].seconds:
        best[rate.name] = rate


def _boot_context(image: bytes, cmdline: str, ram: GuestRam) -> object:
    from replayvm.engine.vcpu import Vcpu

    plan = plan_pvh_boot(image, ram.size, cmdline)
    for paddr, data in plan.writes:
        ram.write(paddr, data)
    setup = Vcpu(ram, pio_read=lambda p, s: 0xFFFFFFFF, pio_write=lambda p, s, v: None)
    setup.enter_protected_mode_flat(plan.entry, {UC_X86_REG_EBX: plan.start_info})
    return setup.uc.context_save()


def _bare(ram: GuestRam, ctx: object, engine: str) -> tuple[Uc, object, list[bool]]:
    from replayvm.engine.native import NativeCounter

    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map_ptr(0, ram.size, UC_PROT_ALL, ram.address)
    uc.ctl_exits_enabled(True)
    uc.ctl_set_exits([])
    uc.context_restore(ctx)
    counter: object = None
    if engine in ("native", "native-calls"):
        counter = NativeCounter(uc, patching=engine == "native")
    elif engine == "count":
        counter = CountModeCounter(uc)
    if engine == "hook-floor":
        from replayvm.engine.native import add_noop_block_hook

        add_noop_block_hook(uc)
    exited = [False]

    def on_in(uc: Uc, port: int, size: int, _ud: object) -> int:
        return 0xFFFFFFFF

    def on_out(uc: Uc, port: int, size: int, value: int, _ud: object) -> None:
        if port == DEBUG_EXIT_PORT:
            exited[0] = True
            if counter is not None:
                counter.mark_stop()  # type: ignore[attr-defined]
            uc.emu_stop()

    uc.hook_add(UC_HOOK_INSN, on_in, None, 1, 0, UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, UC_X86_INS_OUT)
    return uc, counter, exited


def run_engine(image: bytes, cmdline: str, engine: str, *, memory_mib: int = 64, slice_insns: int = 2_000_000) -> Rate:
    """Run ``image`` to its debug exit with ``engine`` in {"free", "hook-floor", "count", "native",
    "native-calls"} (native-calls: the native counter with every block calling its hook, which
    is what native does where Unicorn's code buffer is not writable)."""
    ram = GuestRam(memory_mib << 20)
    ctx = _boot_context(image, cmdline, ram)
    uc, counter, exited = _bare(ram, ctx, engine)
    done = 0
    t0 = monotonic()
    if counter is None:
        uc.emu_start(uc.reg_read(UC_X86_REG_RIP), UNTIL_NEVER)
    else:
        while not exited[0]:
            executed, early = counter.run(uc.reg_read(UC_X86_REG_RIP), slice_insns)  # type: ignore[attr-defined]
            done += executed
            if early and not exited[0]:
                break  # halted
    seconds = monotonic() - t0
    return Rate(engine, done, seconds)


def in_fresh_process(module: str, args: Sequence[str]) -> tuple[Rate, dict[str, object]]:
    """Run ``python -m module args``, a benchmark side named ``args[0]`` that
    ends with :func:`report_side`; return its rate and all it reported.
    Before its side, each child computes the native counter's layout
    (:func:`prepare_child`), so every child's heap has the same history."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise EngineError(f"benchmark side `{args[0]}` failed: {tail[0]}")
    got: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return Rate(args[0], int(got["instructions"]), float(got["seconds"])), got  # type: ignore[call-overload,arg-type]


_KEPT_OPEN: list[Uc] = []


def prepare_child() -> None:
    """What every benchmark child does before its side (see in_fresh_process
    and the module's docstring): the native counter's calibration, then one
    engine with a CPU kept open for the child's life, so that no side is
    timed in the process's first engine."""
    from replayvm.engine.native import native_available

    native_available()
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.reg_read(UC_X86_REG_RIP)  # Unicorn creates the CPU on first use
    _KEPT_OPEN.append(uc)


def report_side(rate: Rate, **extra: object) -> None:
    """A benchmark child's last words: its rate (and ``extra``) as one JSON line."""
    print(json.dumps({"instructions": rate.instructions, "seconds": rate.seconds, **extra}))


def bench_engines(
    image: bytes, cmdline: str = "", *, memory_mib: int = 64, repeat: int = 1, progress: Progress | None = None
) -> dict[str, object]:
    """Rates of free-running, count mode and native mode on the same image.

    With ``repeat`` > 1 each side but count mode (ten times slower, and steady)
    runs that many times, interleaved, and its fastest run counts (see the
    module's docstring). ``progress`` hears of every run. The free-running
    side is credited with the instruction count the counted sides measured
    (they must agree, or this raises ``EngineError``)."""
    from replayvm.engine.native import native_available, native_layout

    ok, why = native_available()
    engines: tuple[str, ...] = ("free", "hook-floor", "count", "native") if ok else ("free", "count")
    if ok and native_layout().patching:
        engines += ("native-calls",)
    best: dict[str, Rate] = {}
    with tempfile.TemporaryDirectory(prefix="replayvm-bench-") as tmp:
        image_path = Path(tmp) / "image"
        image_path.write_bytes(image)
        for round_ in range(max(1, repeat)):
            for name in engines:
                if name == "count" and round_:
                    continue
                rate, _ = in_fresh_process(__name__, [name, str(image_path), cmdline, str(memory_mib)])
                keep_best(best, rate)
                if progress is not None:
                    progress(rate, round_ + 1, max(1, repeat))
    count, native, calls = best["count"], best.get("native"), best.get("native-calls")
    for side in (native, calls):
        if side is not None and side.instructions != count.instructions:
            raise EngineError(f"{side.name} counted {side.instructions} instructions, count mode {count.instructions}")
    free = Rate("free", count.instructions, best["free"].seconds)
    sides = [free]
    if "hook-floor" in best:
        sides.append(Rate("hook-floor", count.instructions, best["hook-floor"].seconds))
    sides += [count] + [side for side in (native, calls) if side is not None]
    result: dict[str, object] = {
        "instructions": count.instructions,
        "repeat": max(1, repeat),
        "sides": [{"engine": s.name, "seconds": round(s.seconds, 4), "mips": round(s.mips, 1)} for s in sides],
        "count_vs_free": round(count.mips / free.mips, 3) if free.mips else 0.0,
    }
    if native is not None:
        result["native_vs_free"] = round(native.mips / free.mips, 3) if free.mips else 0.0
        floor = sides[1]
        result["hook_floor_vs_free"] = round(floor.mips / free.mips, 3) if free.mips else 0.0
    if calls is not None:
        result["native_calls_vs_free"] = round(calls.mips / free.mips, 3) if free.mips else 0.0
    if native is None:
        result["native_unavailable"] = why
    return result


def main(argv: list[str]) -> int:
    """``python -m replayvm.engine.nativebench ENGINE IMAGE CMDLINE MEMORY_MIB``:
    one side, in this (fresh) process; prints {"instructions", "seconds"}."""
    if len(argv) != 4:
        print("usage: python -m replayvm.engine.nativebench ENGINE IMAGE CMDLINE MEMORY_MIB", file=sys.stderr)
        return 2
    engine, image, cmdline, memory = argv
    prepare_child()
    rate = run_engine(Path(image).read_bytes(), cmdline, engine, memory_mib=int(memory))
    report_side(rate)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`replayvm bench`: ReplayVM against bare Unicorn on the same image, in one run.

Both sides boot the compute guest (``crc``) from the same PVH entry state and
execute the same number of instructions in the same count-limited slices.
The bare side has no devices and no exit handling: a single IN hook answers
all-ones so the guest's serial polling finds the transmitter ready, and the
run ends at ReplayVM's instruction count. The ratio is what ReplayVM's
hypervisor layer costs on top of the engine. Recording and replaying the
same run are timed too, against the plain run. Each side runs in fresh
processes prepared alike, best of ``repeat`` (see
:mod:`replayvm.engine.nativebench`: the same run's time varies by up to 1.6x
from one process to the next). Benchmarks print ratios; tests never assert
on them.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, UC_PROT_ALL, Uc
from unicorn.x86_const import UC_X86_INS_IN, UC_X86_REG_EBX, UC_X86_REG_RIP

from replayvm.boot.pvh import plan_pvh_boot
from replayvm.debugger.symbols import SymbolTable
from replayvm.engine.icount import CountModeCounter
from replayvm.engine.memory import GuestRam
from replayvm.engine.nativebench import Progress, Rate, in_fresh_process, keep_best, prepare_child, report_side
from replayvm.engine.vcpu import Vcpu
from replayvm.errors import EngineError
from replayvm.host import monotonic
from replayvm.machine import MAX_SLICE, Machine, MachineConfig
from replayvm.session.recorder import Recorder
from replayvm.session.replayer import Replayer


def run_replayvm(image: bytes, cmdline: str, memory_mib: int) -> tuple[Rate, int]:
    machine = Machine(MachineConfig(memory_mib, cmdline), image)
    t0 = monotonic()
    result = machine.run()
    return Rate("replayvm", result.icount, monotonic() - t0), result.status


def run_bare(image: bytes, cmdline: str, memory_mib: int, instructions: int) -> Rate:
    ram = GuestRam(memory_mib << 20)
    plan = plan_pvh_boot(image, ram.size, cmdline)
    for paddr, data in plan.writes:
        ram.write(paddr, data)
    # Borrow the vCPU only to put the CPU in the PVH entry state, then run a
    # fresh Unicorn with nothing but RAM and one IN hook.
    setup = Vcpu(ram, pio_read=lambda p, s: 0xFFFFFFFF, pio_write=lambda p, s, v: None)
    setup.enter_protected_mode_flat(plan.entry, {UC_X86_REG_EBX: plan.start_info})
    ctx = setup.uc.context_save()
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map_ptr(0, ram.size, UC_PROT_ALL, ram.address)
    uc.context_restore(ctx)
    uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, ud: 0xFFFFFFFF, None, 1, 0, UC_X86_INS_IN)
    counter = CountModeCounter(uc)
    done = 0
    t0 = monotonic()
    while done < instructions:
        executed, halted = counter.run(uc.reg_read(UC_X86_REG_RIP), min(MAX_SLICE, instructions - done))
        done += executed
        if halted:
            break
    return Rate("bare-unicorn", done, monotonic() - t0)


def run_record(image: bytes, cmdline: str, memory_mib: int, path: Path) -> Rate:
    recorder = Recorder(path, image, MachineConfig(memory_mib, cmdline), image_name="crc")
    t0 = monotonic()
    recorded = recorder.run()
    return Rate("record", recorded.icount, monotonic() - t0)


def run_replay(path: Path) -> Rate:
    replayer = Replayer(path)
    t0 = monotonic()
    replayed = replayer.run().result
    return Rate("replay", replayed.icount, monotonic() - t0)


def _side(name: str, image_path: Path, cmdline: str, memory_mib: int, extra: str = "") -> tuple[Rate, int]:
    rate, got = in_fresh_process(__name__, [name, str(image_path), cmdline, str(memory_mib), extra])
    return rate, int(got["status"])  # type: ignore[call-overload]


def bench(
    image: bytes, cmdline: str, memory_mib: int = 64, *, repeat: int = 1, progress: Progress | None = None
) -> dict[str, object]:
    best: dict[str, Rate] = {}
    status = 0
    with tempfile.TemporaryDirectory(prefix="replayvm-bench-") as tmp:
        image_path, recording = Path(tmp) / "image", Path(tmp) / "bench.rvr"
        image_path.write_bytes(image)
        for round_ in range(1, max(1, repeat) + 1):
            for name in ("replayvm", "record", "replay"):
                side, got_status = _side(name, image_path, cmdline, memory_mib, str(recording))
                status = got_status if name == "replayvm" else status
                keep_best(best, side)
                if progress is not None:
                    progress(side, round_, max(1, repeat))
        ours, record, replay = best["replayvm"], best["record"], best["replay"]
        if not ours.instructions == record.instructions == replay.instructions:
            raise EngineError(
                f"run, record and replay executed {ours.instructions}, {record.instructions} and "
                f"{replay.instructions} instructions"
            )
        bare, _ = _side("bare-unicorn", image_path, cmdline, memory_mib, str(ours.instructions))

    def per(a: Rate, b: Rate) -> float:
        return round(a.seconds / b.seconds, 3) if b.seconds else 0.0

    return {
        "guest_status": status,
        "cmdline": cmdline,
        "repeat": max(1, repeat),
        "slice": MAX_SLICE,
        "sides": [dict(asdict(s), mips=round(s.mips, 2)) for s in (ours, bare, record, replay)],
        "ratio": round(ours.mips / bare.mips, 3) if bare.mips else 0.0,
        "record_time_vs_run": per(record, ours),
        "replay_time_vs_run": per(replay, ours),
    }


def bench_timeline(work: int = 8, samples: int = 40, seed: int = 1) -> dict[str, object]:
    """Time travel on a long recording (crc with ``work`` passes, ~1.6e8 insns each):
    reverse-stepi at random positions, and reverse-continue against a forward replay
    over the same distance."""
    import random
    import statistics

    from replayvm.guests import catalog
    from replayvm.session.timeline import DebugSession

    image = catalog.image_path("crc").read_bytes()
    with tempfile.TemporaryDirectory(prefix="replayvm-bench-") as tmp:
        path = Path(tmp) / "long.rvr"
        t0 = monotonic()
        recorded = Recorder(path, image, MachineConfig(64, f"work={work}"), image_name="crc").run()
        record_s = monotonic() - t0
        session = DebugSession.open(path)
        t0 = monotonic()
        session.seek(recorded.icount)
        first_pass_s = monotonic() - t0
        rng = random.Random(seed)
        times = []
        for _ in range(samples):
            t = rng.randrange(1, recorded.icount)
            session.seek(t)
            t0 = monotonic()
            session.reverse_stepi()
            times.append(monotonic() - t0)
        # reverse-continue over D: from the end back to kmain's only call (D is almost
        # the whole run), against replaying the same D forward.
        kmain = SymbolTable.from_elf(image).address_of("kmain")
        assert kmain is not None
        session.seek(recorded.icount)
        bp = session.add_breakpoint(kmain)
        t0 = monotonic()
        hit = session.reverse_cont()
        reverse_s = monotonic() - t0
        session.delete(bp.number)
        fresh = DebugSession.open(path, checkpoint_interval=1 << 40)
        fresh.seek(hit.icount)
        t0 = monotonic()
        fresh.seek(recorded.icount)
        forward_s = monotonic() - t0
        memory, budget, checkpoints = session.store.memory, session.store.budget, len(session.store)
    return {
        "work": work,
        "instructions": recorded.icount,
        "record_s": round(record_s, 2),
        "first_replay_with_checkpoints_s": round(first_pass_s, 2),
        "reverse_stepi_ms": {
            "median": round(statistics.median(times) * 1000, 1),
            "worst": round(max(times) * 1000, 1),
            "samples": samples,
        },
        "reverse_continue_distance": recorded.icount - hit.icount,
        "reverse_continue_vs_forward": round(reverse_s / forward_s, 2) if forward_s else None,
        "checkpoint_memory_mib": round(memory / (1 << 20), 1),
        "checkpoint_budget_mib": round(budget / (1 << 20), 1),
        "checkpoints": checkpoints,
    }


def bench_io(disk_mib: int = 32, uart_kib: int = 256) -> dict[str, object]:
    """Full virtualization against paravirtual I/O in one run: the UART's side of
    uart-vs-virtio (an exit per register access) and virtio-blk reading a whole
    disk in 64 KiB requests (POST-code phases 1 and 4 of those guests)."""
    from replayvm.guests import catalog

    def run(name: str, config: MachineConfig) -> tuple[Machine, float]:
        machine = Machine(config, catalog.image_path(name).read_bytes())
        t0 = monotonic()
        machine.run()
        return machine, monotonic() - t0

    def phase_exits(machine: Machine, code: int) -> int:
        marks = machine.phases
        for i, (c, _, counters) in enumerate(marks):
            if c == code:
                after = marks[i + 1][2] if i + 1 < len(marks) else machine.counters()
                return sum(after["by_reason"].values()) - sum(counters["by_reason"].values())  # type: ignore[union-attr]
        return 0

    blk, blk_s = run("blk", MachineConfig(64, "readall=1", virtio=("blk",), disk=bytes(disk_mib << 20)))
    uart, uart_s = run("uart-vs-virtio", MachineConfig(64, f"size={uart_kib * 1024}", virtio=("console",)))
    uart_mib = uart_kib / 1024
    return {
        "virtio_blk": {
            "mib": disk_mib,
            "seconds": round(blk_s, 3),
            "mib_per_s": round(disk_mib / blk_s, 1),
            "exits_per_mib": round(phase_exits(blk, 4) / disk_mib, 1),
        },
        "uart": {
            "mib": uart_mib,
            "seconds": round(uart_s, 3),
            "mib_per_s": round(uart_mib / uart_s, 3),
            "exits_per_mib": round(phase_exits(uart, 1) / uart_mib, 1),
        },
    }


def main(argv: list[str]) -> int:
    """``python -m replayvm.bench SIDE IMAGE CMDLINE MEMORY_MIB ARG``: one side
    of :func:`bench` in this (fresh) process; prints {"instructions",
    "seconds", "status"}. ARG: the recording (record, replay) or the
    instruction count (bare-unicorn)."""
    if len(argv) != 5 or argv[0] not in ("replayvm", "record", "replay", "bare-unicorn"):
        print(
            "usage: python -m replayvm.bench replayvm|record|replay|bare-unicorn IMAGE CMDLINE MIB ARG", file=sys.stderr
        )
        return 2
    name, image_path, cmdline, memory, arg = argv
    image, memory_mib = Path(image_path).read_bytes(), int(memory)
    prepare_child()
    status = 0
    if name == "replayvm":
        side, status = run_replayvm(image, cmdline, memory_mib)
    elif name == "record":
        side = run_record(image, cmdline, memory_mib, Path(arg))
    elif name == "replay":
        side = run_replay(Path(arg))
    else:
        side = run_bare(image, cmdline, memory_mib, int(arg))
    report_side(side, status=status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

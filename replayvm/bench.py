"""`replayvm bench`: ReplayVM against bare Unicorn on the same image, in one run.

Both sides boot the compute guest (``crc``) from the same PVH entry state and
execute the same number of instructions in the same count-limited slices.
The bare side has no devices and no exit handling: a single IN hook answers
all-ones so the guest's serial polling finds the transmitter ready, and the
run ends at ReplayVM's instruction count. The ratio is what ReplayVM's
hypervisor layer costs on top of the engine. Recording and replaying the
same run are timed too, against the plain run. Benchmarks print ratios;
tests never assert on them.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, UC_PROT_ALL, Uc
from unicorn.x86_const import UC_X86_INS_IN, UC_X86_REG_EBX, UC_X86_REG_RIP

from replayvm.boot.pvh import plan_pvh_boot
from replayvm.engine.icount import CountModeCounter
from replayvm.engine.memory import GuestRam
from replayvm.engine.vcpu import Vcpu
from replayvm.host import monotonic
from replayvm.machine import MAX_SLICE, Machine, MachineConfig
from replayvm.session.recorder import Recorder
from replayvm.session.replayer import Replayer


@dataclass(frozen=True, slots=True)
class BenchSide:
    name: str
    instructions: int
    seconds: float

    @property
    def mips(self) -> float:
        return self.instructions / self.seconds / 1e6 if self.seconds > 0 else 0.0


def run_replayvm(image: bytes, cmdline: str, memory_mib: int) -> tuple[BenchSide, int]:
    machine = Machine(MachineConfig(memory_mib, cmdline), image)
    t0 = monotonic()
    result = machine.run()
    return BenchSide("replayvm", result.icount, monotonic() - t0), result.status


def run_bare(image: bytes, cmdline: str, memory_mib: int, instructions: int) -> BenchSide:
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
    return BenchSide("bare-unicorn", done, monotonic() - t0)


def run_record_replay(image: bytes, cmdline: str, memory_mib: int) -> tuple[BenchSide, BenchSide]:
    with tempfile.TemporaryDirectory(prefix="replayvm-bench-") as tmp:
        path = Path(tmp) / "bench.rvr"
        recorder = Recorder(path, image, MachineConfig(memory_mib, cmdline), image_name="crc")
        t0 = monotonic()
        recorded = recorder.run()
        record = BenchSide("record", recorded.icount, monotonic() - t0)
        replayer = Replayer(path)
        t0 = monotonic()
        replayed = replayer.run().result
        replay = BenchSide("replay", replayed.icount, monotonic() - t0)
    return record, replay


def bench(image: bytes, cmdline: str, memory_mib: int = 64) -> dict[str, object]:
    ours, status = run_replayvm(image, cmdline, memory_mib)
    bare = run_bare(image, cmdline, memory_mib, ours.instructions)
    record, replay = run_record_replay(image, cmdline, memory_mib)

    def per(a: BenchSide, b: BenchSide) -> float:
        return round(a.seconds / b.seconds, 3) if b.seconds else 0.0

    return {
        "guest_status": status,
        "cmdline": cmdline,
        "slice": MAX_SLICE,
        "sides": [dict(asdict(s), mips=round(s.mips, 2)) for s in (ours, bare, record, replay)],
        "ratio": round(ours.mips / bare.mips, 3) if bare.mips else 0.0,
        "record_time_vs_run": per(record, ours),
        "replay_time_vs_run": per(replay, ours),
    }

"""Random slice sizes and random deadlines land exactly, under both engines (issue 9).

Hypothesis draws the slice sizes and deadlines; count mode and the native
counter must end every slice at the same instruction with the same state.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_guests.harness import GCC, LD, build_torture, engine, run_traced

from replayvm.boot.pvh import plan_pvh_boot
from replayvm.engine.memory import GuestRam
from replayvm.engine.native import native_available
from replayvm.engine.vcpu import Vcpu
from replayvm.guests import catalog

AVAILABLE, WHY = native_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"native counter unavailable: {WHY}")

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def torture(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if GCC is None or LD is None:
        pytest.skip("gcc and ld are needed to build the test guest (not on PATH)")
    return build_torture(tmp_path_factory.mktemp("native-props")).read_bytes()


@SETTINGS
@given(max_slice=st.integers(2, 3000), max_insns=st.integers(1, 70_000))
def test_machine_with_random_slices_and_deadline(torture: bytes, max_slice: int, max_insns: int) -> None:
    count = run_traced(torture, "count", max_slice=max_slice, max_insns=max_insns)
    native = run_traced(torture, "native", max_slice=max_slice, max_insns=max_insns)
    assert native.log == count.log
    assert native.result.icount == count.result.icount  # type: ignore[attr-defined]
    assert native.state == count.state and native.digest == count.digest
    assert native.stats["inexact"] == 0


def _vcpu(image: bytes, kind: str) -> tuple[Vcpu, list[tuple[str, int, int]]]:
    """A bare vCPU (no devices, no interrupts) booted into ``image``."""
    ram = GuestRam(64 << 20)
    plan = plan_pvh_boot(image, ram.size, "")
    for paddr, data in plan.writes:
        ram.write(paddr, data)
    log: list[tuple[str, int, int]] = []
    holder: list[Vcpu] = []

    def pio_read(port: int, size: int) -> int:
        log.append(("in", port, holder[0].current_icount()))
        return (port * 0x9E37 + len(log)) & 0xFFFFFFFF

    def pio_write(port: int, size: int, value: int) -> None:
        log.append(("out", port, holder[0].current_icount()))

    with engine(kind):
        vcpu = Vcpu(ram, pio_read=pio_read, pio_write=pio_write)
    holder.append(vcpu)
    from unicorn.x86_const import UC_X86_REG_EBX

    vcpu.enter_protected_mode_flat(plan.entry, {UC_X86_REG_EBX: plan.start_info})
    return vcpu, log


def _slices(vcpu: Vcpu, budgets: list[int]) -> list[tuple[object, ...]]:
    out = []
    for budget in budgets:
        reason = vcpu.run(budget)
        out.append((str(reason), vcpu.icount, vcpu.rip, hashlib.blake2b(vcpu.register_state()).hexdigest()))
    return out


@SETTINGS
@given(budgets=st.lists(st.integers(1, 6000), min_size=1, max_size=25))
def test_vcpu_random_budgets_on_the_torture_guest(torture: bytes, budgets: list[int]) -> None:
    results = {}
    for kind in ("count", "native"):
        vcpu, log = _vcpu(torture, kind)
        results[kind] = (_slices(vcpu, budgets), log, vcpu.ram.digest())
        assert vcpu.counter.name == kind
    assert results["native"] == results["count"]


@SETTINGS
@given(budgets=st.lists(st.integers(1, 200_000), min_size=1, max_size=12))
def test_vcpu_random_budgets_on_the_crc_guest(budgets: list[int]) -> None:
    image = catalog.image_path("crc").read_bytes()
    results = {}
    for kind in ("count", "native"):
        vcpu, log = _vcpu(image, kind)
        results[kind] = (_slices(vcpu, budgets), log)
    assert results["native"] == results["count"]

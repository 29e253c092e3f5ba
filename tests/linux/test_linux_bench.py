"""`replayvm bench --linux`'s function: the structure of its report, and run,
record and replay agreeing on every instruction count (never on timings)."""

from __future__ import annotations

import shutil

import pytest

from replayvm.guests.linux_assets import find_assets

pytestmark = [pytest.mark.slow, pytest.mark.linux]

ASSETS = find_assets()
if ASSETS is None:
    pytest.skip("Linux assets absent: fetch them with `replayvm guests fetch-linux`", allow_module_level=True)


def test_bench_linux_sides_agree_on_instructions_to_the_prompt_and_to_the_end() -> None:
    from replayvm.benchlinux import SESSION_COMMANDS, bench_linux

    assert ASSETS is not None
    report = bench_linux(ASSETS, qemu=shutil.which("qemu-system-x86_64") is not None)
    sides = report["sides"]
    assert [s["name"] for s in sides] == ["run", "record", "replay"]  # type: ignore[union-attr,index]
    run = sides[0]  # type: ignore[index]
    for side in sides:  # type: ignore[union-attr]
        assert side["instructions"] == run["instructions"] > 100_000_000
        assert side["prompt_instructions"] == run["prompt_instructions"] > 100_000_000
        assert side["prompt_instructions"] < side["instructions"]
        assert side["reason"] == "reset"  # exit, then init's reboot -f
        assert {"seconds", "mips", "prompt_seconds", "prompt_mips"} <= side.keys()
    assert report["commands"] == list(SESSION_COMMANDS) and report["prompt"] == "~ # "
    qemu = report["qemu"]
    if qemu is None:
        assert report["qemu_absent"]
    else:
        assert qemu["finished"], qemu  # type: ignore[index]
        assert {"command", "prompt_seconds", "seconds", "prompt_mips", "mips"} <= qemu.keys()  # type: ignore[union-attr]

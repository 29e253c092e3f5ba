"""Recordings as bug reports: expectations, the pytest plugin, bless, the fixture."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from replayvm.devices.uart16550 import Uart16550
from replayvm.guests import catalog
from replayvm.log import RecordingReader
from replayvm.testing.check import replay_and_check
from replayvm.testing.expectations import read_report
from tests.exe import EXE


def record(path: Path, guest: str, *extra: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*EXE, "record", guest, "-o", str(path), "-q", *extra],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bug(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bug") / "bug.rvr"
    proc = record(
        path,
        "buggy",
        "--expect",
        "status",
        "--expect",
        "crash-at",
        "--expect",
        "output",
        "--note",
        "order_total crashes after cancelling the newest order",
    )
    assert proc.returncode == catalog.expected_status("buggy")
    return path


def test_record_stores_note_and_expectations_from_the_run(bug: Path) -> None:
    with RecordingReader(bug) as reader:
        report = read_report(reader)
    assert report is not None
    assert report.note == "order_total crashes after cancelling the newest order"
    values = {e.kind: e.value for e in report.expectations}
    assert values["status"] == "255"
    assert values["crash-at"] == "order_total"
    assert values["output"].startswith("sha256:")
    info = subprocess.run([*EXE, "info", str(bug)], capture_output=True, check=True).stdout.decode()
    assert "note           order_total crashes" in info and "crash-at=order_total" in info


def test_replay_checks_the_expectations(bug: Path) -> None:
    result = replay_and_check(bug)
    assert result.ok, result.explain()


def test_unknown_expectation_kind_is_one_line(tmp_path: Path) -> None:
    proc = record(tmp_path / "x.rvr", "hello", "--expect", "weather=sunny")
    assert proc.returncode == 2
    assert "unknown expectation 'weather'" in proc.stderr.decode()


def test_changed_device_behaviour_fails_with_a_readable_divergence_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = tmp_path / "echo.rvr"
    record(
        rec, "echo", "--expect", "status", "--sync-interval", "5000", stdin=catalog.get("echo").input_path.read_bytes()
    )
    original = Uart16550.receive

    def swapped_case(self: Uart16550, byte: int) -> None:  # a "regression" in the UART
        original(self, byte ^ 0x20 if chr(byte).isalpha() else byte)

    monkeypatch.setattr(Uart16550, "receive", swapped_case)
    result = replay_and_check(rec)
    assert not result.ok
    report = result.explain()
    assert "DIVERGED at icount" in report
    assert "expected RIP 0x" in report and "<" in report  # symbolised
    assert "serial-input" in report  # the last events before it


def pytester_recording(pytester: pytest.Pytester, source: Path, name: str) -> Path:
    target = pytester.path / name
    shutil.copy(source, target)
    return target


def test_plugin_replays_recordings_as_tests(pytester: pytest.Pytester, bug: Path) -> None:
    pytester_recording(pytester, bug, "bug.rvr")
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*bug.rvr::replay PASSED*"])


def test_unmet_expectation_fails_and_bless_rerecords_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.rvr"
    proc = record(wrong, "hello", "--expect", "status=0", "--expect", "output-contains=Hello")
    assert b"does not meet --expect status=0" in proc.stderr
    pytester_recording(pytester, wrong, "wrong.rvr")
    failed = pytester.runpytest_subprocess()
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*expectation not met: status=0: exit status 1, expected 0*"])
    blessed = pytester.runpytest_subprocess("--replayvm-bless")
    blessed.assert_outcomes(passed=1)
    again = pytester.runpytest_subprocess()
    again.assert_outcomes(passed=1)
    with RecordingReader(pytester.path / "wrong.rvr") as reader:
        report = read_report(reader)
    assert report is not None and [str(e) for e in report.expectations] == ["status=1", "output-contains=Hello"]


def test_fixture_drives_a_recording_from_python(bug: Path, replayvm_session) -> None:  # type: ignore[no-untyped-def]
    drv = replayvm_session(bug)
    stop = drv.run_to("order_total")
    assert stop.reason == "breakpoint" and drv.where() == "order_total"
    first = drv.session.icount
    drv.run_to("order_total")
    second = drv.session.icount
    assert second > first
    assert drv.register("rdi") != 0xDEADBEEFDEADBEEF  # the first call gets a real list
    drv.session.reverse_stepi()
    assert drv.session.icount == second - 1


def test_trimmed_recording_is_smaller_and_replays_to_the_same_end(tmp_path: Path) -> None:
    import random

    rng = random.Random(7)
    lines = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(rng.randint(5, 40)))
        for _ in range(500)
    ]
    rec, trimmed = tmp_path / "long.rvr", tmp_path / "short.rvr"
    proc = record(rec, "echo", "--expect", "output", stdin=("\n".join(lines) + "\nquit\n").encode())
    full_output = proc.stdout
    with RecordingReader(rec) as reader:
        assert reader.end is not None
        end = reader.end
    start = end.icount - 15_000
    cut = subprocess.run(
        [*EXE, "trim", str(rec), "--from", str(start), "-o", str(trimmed)], capture_output=True, check=False
    )
    assert cut.returncode == 0, cut.stderr
    assert trimmed.stat().st_size < rec.stat().st_size
    with RecordingReader(trimmed) as reader:
        assert reader.end == end
        assert all(e.icount >= start for e in reader.events() if type(e).__name__ != "WallClock")
    replayed = subprocess.run([*EXE, "replay", str(trimmed)], capture_output=True, check=False)
    assert replayed.returncode == proc.returncode
    assert b"replay matched the recording" in replayed.stderr
    assert full_output.endswith(replayed.stdout) and len(replayed.stdout) < len(full_output)


def test_final_state_expression_is_checked_at_record_and_replay(tmp_path: Path) -> None:
    rec = tmp_path / "final.rvr"
    proc = record(rec, "buggy", "--expect", "final=($rax & 0xff) == 0x7f", "--expect", "final=$rax == 1")
    assert b"does not meet --expect final=$rax == 1" in proc.stderr
    assert b"final=($rax & 0xff)" not in proc.stderr  # met: guest_exit(0x7f) leaves it in AL
    result = replay_and_check(rec)
    assert [f.split(":")[0] for f in result.failures] == ["final=$rax == 1"]

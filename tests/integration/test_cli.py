"""The `replayvm` command end to end, as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from replayvm.guests import catalog
from tests.elfimage import make_elf
from tests.exe import EXE


def replayvm(*args: str, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*EXE, *args],
        check=False,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )


def one_line_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_run_bundled_guest_prints_output_and_returns_guest_status() -> None:
    proc = replayvm("run", "hello")
    assert catalog.deterministic_lines(proc.stdout) == catalog.expected_output("hello")
    assert proc.returncode == catalog.expected_status("hello")
    summary = proc.stderr.decode()
    assert "instructions" in summary and "exits" in summary and "MIPS" in summary


def test_run_with_cmdline_passes_it_to_the_guest() -> None:
    proc = replayvm("run", "hello", "--cmdline", "name=tester")
    assert b'command line: "name=tester"' in proc.stdout


def test_run_reads_serial_input_from_a_pipe() -> None:
    proc = replayvm("run", "echo", "-q", stdin=b"from a pipe\nquit\n")
    assert b"echo: from a pipe" in proc.stdout
    assert proc.returncode == catalog.expected_status("echo")


def test_run_reads_serial_input_from_a_file(tmp_path: Path) -> None:
    script = tmp_path / "in.txt"
    script.write_bytes(b"line one\nquit\n")
    proc = replayvm("run", "echo", "--input", str(script))
    assert b"echo: line one" in proc.stdout


def test_run_image_by_path() -> None:
    proc = replayvm("run", str(catalog.image_path("hello")), "--cmdline", "name=path")
    assert b'"name=path"' in proc.stdout
    assert proc.returncode == 1


def test_max_insns_stops_the_guest_with_status_124() -> None:
    proc = replayvm("run", "crc", "--max-insns", "1000000")
    assert proc.returncode == 124
    assert "--max-insns" in proc.stderr.decode()
    assert "1000000 instructions" in proc.stderr.decode()


def test_not_an_elf_is_one_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"this is not a kernel" * 10)
    proc = replayvm("run", str(bad))
    assert proc.returncode == 2
    assert "not an ELF" in one_line_error(proc)


def test_elf_without_pvh_note_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.elf"
    plain.write_bytes(make_elf(entry_note=None))
    proc = replayvm("run", str(plain))
    assert proc.returncode == 2
    assert "no PVH entry note" in one_line_error(proc)


def test_image_larger_than_ram_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.elf"
    big.write_bytes(make_elf(memsz=8 << 20))
    proc = replayvm("run", str(big), "--memory", "4")
    assert proc.returncode == 2
    assert "--memory" in one_line_error(proc)


@pytest.mark.parametrize("memory", ["0", "-5", "lots", "100000"])
def test_bad_memory_option_is_refused(memory: str) -> None:
    proc = replayvm("run", "hello", "--memory", memory)
    assert proc.returncode == 2
    assert "memory" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


def test_missing_image_is_one_line() -> None:
    proc = replayvm("run", "no-such-guest")
    assert proc.returncode == 2
    assert "no such file or bundled guest" in one_line_error(proc)


def test_guests_lists_every_bundled_guest() -> None:
    proc = replayvm("guests")
    assert proc.returncode == 0
    listed = [line.split()[0] for line in proc.stdout.decode().splitlines()]
    assert listed == [g.name for g in catalog.all_guests()]


def test_demo_runs_and_explains_exits() -> None:
    proc = replayvm("demo")
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()
    assert "demo: 6. done" in out
    assert "VM exits by reason" in out and "io" in out


def test_help_is_available_for_every_command() -> None:
    for cmd in ([], ["run"], ["guests"], ["bench"], ["demo"]):
        proc = replayvm(*cmd, "--help")
        assert proc.returncode == 0
        assert b"usage: replayvm" in proc.stdout


@pytest.mark.slow
def test_bench_json_reports_both_sides_on_the_same_instruction_count() -> None:
    proc = replayvm("bench", "--json", "--repeat", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    ours, bare = report["sides"][:2]
    assert (ours["name"], bare["name"]) == ("replayvm", "bare-unicorn")
    assert ours["instructions"] == bare["instructions"] > 100_000_000
    assert report["guest_status"] == catalog.expected_status("crc")
    assert report["ratio"] > 0

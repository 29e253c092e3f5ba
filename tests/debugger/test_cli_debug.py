"""`replayvm debug` end to end: the installed command in a subprocess."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from replayvm.log.format import MAGIC
from tests.debugger.conftest import Driven
from tests.exe import EXE


def replayvm(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*EXE, *args],  # type: ignore[list-item]
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def script(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "commands.gdb"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_debug_a_bundled_guest_records_it_then_starts_at_its_end(tmp_path: Path) -> None:
    keep = tmp_path / "hello.rvr"
    commands = script(tmp_path, "when", "bt", "reverse-stepi 3", "when", "info registers rip")
    proc = replayvm("debug", "hello", "-o", str(keep), "--batch", "-x", commands)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "hello: bye" in out  # the guest ran, under the recorder
    end = int(re.findall(r"Current icount: (\d+)", out)[0])
    assert re.search(rf"in guest_exit \(\) \[icount {end}\]", out)
    assert re.search(r"^#0  0x[0-9a-f]{16} in guest_exit \(\)\n#1  0x[0-9a-f]{16} in sdk_main \(\)$", out, re.MULTILINE)
    assert f"Current icount: {end - 3}" in out
    assert re.search(r"^rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <\w+(\+\d+)?>$", out, re.MULTILINE)
    assert keep.read_bytes().startswith(MAGIC)
    assert "Traceback" not in proc.stderr


def test_a_failing_command_stops_the_script_with_one_line_and_status_1(demo_rvr: Path, tmp_path: Path) -> None:
    commands = script(tmp_path, "break kprintf", "print nosuch", "when")
    proc = replayvm("debug", str(demo_rvr), "--batch", "-x", commands)
    assert proc.returncode == 1
    assert proc.stdout.startswith("Breakpoint 1 at 0x")
    assert "Current icount" not in proc.stdout  # the script stopped at the error, as gdb's -x does
    assert proc.stderr == 'No symbol "nosuch" in current context.\n'


def test_commands_piped_on_stdin_run_after_a_banner(demo_rvr: Path) -> None:
    proc = replayvm("debug", str(demo_rvr), stdin=b"si 2\nwhen\nbogus\nquit\n")
    assert proc.returncode == 1  # one command failed
    assert proc.stdout.startswith(f"ReplayVM debugger on {demo_rvr}: image demo, 64 MiB")
    assert "in pvh_start32 () [icount 2]" in proc.stdout
    assert "Current icount: 2" in proc.stdout
    assert proc.stderr == 'Undefined command: "bogus".  Try "help".\n'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.rvr",), "replayvm: no such recording: missing.rvr"),
        (("no-such-guest",), "replayvm: no such file or bundled guest: no-such-guest (see `replayvm guests`)"),
        (("DEMO", "--cmdline", "x"), "replayvm: --cmdline applies only when recording an image, not to a recording"),
    ],
)
def test_bad_targets_are_one_line_errors(demo_rvr: Path, args: tuple[str, ...], message: str) -> None:
    proc = replayvm("debug", *(str(demo_rvr) if a == "DEMO" else a for a in args), "--batch")
    assert proc.returncode == 2
    assert proc.stderr == message + "\n"


def test_an_unexpected_exception_is_one_line_with_a_hint(demo: Driven, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, int]:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(demo.dbg.session, "registers", broken)
    assert demo.error("info registers") == (
        "Internal error: ZeroDivisionError: boom (rerun with --debug for a traceback)"
    )
    demo.dbg.debug = True
    assert not demo.dbg.execute("info registers")
    assert "Traceback" in demo.err.getvalue()

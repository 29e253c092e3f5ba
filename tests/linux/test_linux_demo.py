"""`replayvm demo --linux`: Debian's kernel + a busybox shell, recorded, with
scripted input instead of a terminal; the recording replays exactly.

Without the assets (`replayvm guests fetch-linux`) this skips: the test must
not download them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from replayvm.guests.linux_assets import find_assets
from tests.exe import EXE

pytestmark = [pytest.mark.slow, pytest.mark.linux]

if find_assets() is None:
    pytest.skip("Linux assets absent: fetch them with `replayvm guests fetch-linux`", allow_module_level=True)


def test_demo_linux_records_a_scripted_shell_session_that_replays(tmp_path: Path) -> None:
    from replayvm.session.replayer import Replayer

    (tmp_path / "input.txt").write_text("echo hello-from-busybox\npoweroff -f\n")
    proc = subprocess.run(
        [*EXE, "demo", "--linux", "--input", "input.txt", "-o", "demo.rvr"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, timeout=900, check=False,
    )  # fmt: skip
    out, err = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode()
    assert proc.returncode == 0, err
    lines = out.replace("\r\n", "\n").split("\n")
    assert "Linux version 6.1" in out and "this busybox shell is on ttyS0" in out
    assert "~ # poweroff -f" in lines and "hello-from-busybox" in lines  # the command's output, not its echo
    assert "reboot: System halted" in out and "Linux halted the CPU" in err
    assert "    replayvm replay demo.rvr" in lines and "    replayvm debug demo.rvr" in lines

    serial = bytearray()
    report = Replayer(tmp_path / "demo.rvr", serial_out=serial.extend).run()
    assert report.complete and report.result.reason == "halted"
    assert bytes(serial) in proc.stdout and b"hello-from-busybox" in serial

"""``python -m replayvm.guests.build`` is deterministic and fails clearly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from replayvm.guests import build, catalog

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_build_reproduces_committed_images_byte_for_byte(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not on PATH")
    committed = (build.IMAGES_DIR / build.TOOLCHAIN_FILE).read_text()
    if build.toolchain_id(gcc) != committed:
        pytest.skip(f"images were built with another toolchain: {committed.splitlines()[0]}")

    proc = subprocess.run(
        [sys.executable, "-m", "replayvm.guests.build", "--out", str(tmp_path)],
        cwd=tmp_path,  # the output must not depend on the working directory
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": str(Path(gcc).parent)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in [g.name for g in catalog.all_guests()]:
        rebuilt = (tmp_path / f"{name}.elf").read_bytes()
        assert rebuilt == catalog.image_path(name).read_bytes(), name


def test_build_without_gcc_fails_with_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = build.main(["--cc", "no-such-gcc-for-replayvm", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status != 0
    assert err.count("\n") == 1
    assert err.startswith("error: ") and "no-such-gcc-for-replayvm" in err


def test_build_rejects_unknown_guest_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not on PATH")
    assert build.main(["--out", str(tmp_path), "nope"]) != 0
    assert "unknown guest 'nope'" in capsys.readouterr().err

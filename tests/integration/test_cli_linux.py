"""The Linux conveniences of the `replayvm` command that need no kernel:
`guests build-initramfs`, and the one-line errors of `guests fetch-linux`,
`demo --linux` and `bench --linux` on a machine without apt or assets
(the commands with a kernel are in tests/linux)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.guests.test_initramfs import parse_newc
from tests.integration.test_cli import one_line_error, replayvm

FAKE_BUSYBOX = b"\x7fELF" + bytes(range(256)) * 4
INIT = "#!/bin/sh\necho hello from a custom init\nexec /bin/sh\n"


def replayvm_without_apt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The command on a machine with no apt-get and no fetched assets."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = dict(os.environ, PATH=str(tmp_path / "no-bin"), REPLAYVM_LINUX_DIR=str(empty))
    return subprocess.run(
        [sys.executable, "-m", "replayvm", *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_build_initramfs_writes_a_newc_archive_with_busybox_and_init(tmp_path: Path) -> None:
    (tmp_path / "busybox").write_bytes(FAKE_BUSYBOX)
    (tmp_path / "init.sh").write_text(INIT)
    out = tmp_path / "out.cpio"
    proc = replayvm(
        "guests", "build-initramfs", "--busybox", str(tmp_path / "busybox"), "--init", str(tmp_path / "init.sh"),
        "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    data = out.read_bytes()
    entries = parse_newc(data)  # walks every header up to TRAILER!!! and checks the padding
    assert b"TRAILER!!!\0" in data and len(data) % 512 == 0
    mode, body, _ = entries["init"]
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755 and body == INIT.encode()
    mode, body, _ = entries["bin/busybox"]
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755 and body == FAKE_BUSYBOX
    mode, body, _ = entries["bin/sh"]
    assert stat.S_ISLNK(mode) and body == b"busybox"
    assert str(out) in proc.stderr.decode()


def test_build_initramfs_without_init_uses_the_test_init(tmp_path: Path) -> None:
    from replayvm.guests.initramfs import DEFAULT_INIT

    (tmp_path / "busybox").write_bytes(FAKE_BUSYBOX)
    proc = replayvm("guests", "build-initramfs", "--busybox", str(tmp_path / "busybox"), "-o", str(tmp_path / "i"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert parse_newc((tmp_path / "i").read_bytes())["init"][1] == DEFAULT_INIT.encode()


def test_build_initramfs_with_a_missing_busybox_is_one_line(tmp_path: Path) -> None:
    proc = replayvm("guests", "build-initramfs", "--busybox", str(tmp_path / "nope"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "cannot read --busybox" in one_line_error(proc)
    assert not (tmp_path / "o").exists()


def test_build_initramfs_refuses_a_busybox_that_is_not_elf(tmp_path: Path) -> None:
    (tmp_path / "busybox").write_text("#!/bin/sh\n")
    proc = replayvm("guests", "build-initramfs", "--busybox", str(tmp_path / "busybox"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "not an ELF executable" in one_line_error(proc)


def test_build_initramfs_refuses_an_init_without_interpreter_line(tmp_path: Path) -> None:
    (tmp_path / "busybox").write_bytes(FAKE_BUSYBOX)
    (tmp_path / "init.sh").write_text("echo no shebang\n")
    proc = replayvm(
        "guests", "build-initramfs", "--busybox", str(tmp_path / "busybox"), "--init", str(tmp_path / "init.sh"),
        "-o", str(tmp_path / "o"),
    )  # fmt: skip
    assert proc.returncode == 2
    assert "#!" in one_line_error(proc)


def test_build_initramfs_without_busybox_or_assets_says_how_to_get_one(tmp_path: Path) -> None:
    proc = replayvm_without_apt(tmp_path, "guests", "build-initramfs", "-o", "o.cpio")
    assert proc.returncode == 2
    assert "fetch-linux" in one_line_error(proc)


def test_guests_alone_still_lists_the_bundled_guests_next_to_the_actions() -> None:
    proc = replayvm("guests", "--help")
    assert proc.returncode == 0
    assert b"build-initramfs" in proc.stdout and b"fetch-linux" in proc.stdout
    for action in ("build-initramfs", "fetch-linux"):
        assert replayvm("guests", action, "--help").returncode == 0


def test_fetch_linux_without_apt_is_one_line(tmp_path: Path) -> None:
    proc = replayvm_without_apt(tmp_path, "guests", "fetch-linux", "--dir", str(tmp_path / "linux"))
    assert proc.returncode == 2
    assert "apt-get is not available" in one_line_error(proc)


def test_demo_linux_without_assets_or_apt_is_one_line(tmp_path: Path) -> None:
    proc = replayvm_without_apt(tmp_path, "demo", "--linux")
    assert proc.returncode == 2
    assert "apt-get is not available" in one_line_error(proc)
    assert not (tmp_path / "linux-demo.rvr").exists()


def test_demo_input_applies_only_to_the_linux_demo(tmp_path: Path) -> None:
    proc = replayvm("demo", "--input", str(tmp_path / "in.txt"))
    assert proc.returncode == 2
    assert "--linux" in one_line_error(proc)


def test_bench_linux_without_assets_is_one_line(tmp_path: Path) -> None:
    proc = replayvm_without_apt(tmp_path, "bench", "--linux")
    assert proc.returncode == 2
    assert "replayvm guests fetch-linux" in one_line_error(proc)

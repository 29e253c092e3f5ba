"""The test initramfs builder writes a newc cpio the kernel unpacks
(Documentation/driver-api/early-userspace/buffer-format.rst)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from replayvm.guests.initramfs import DEFAULT_INIT, build_initramfs, main

BUSYBOX = b"\x7fELF" + bytes(1000)


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdevmajor, rdevminor)), checking the format as the kernel does."""
    entries = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        body = name_start + namesize + (-(110 + namesize) % 4)
        assert body % 4 == 0
        if name == "TRAILER!!!":
            assert len(data) % 512 == 0 and not any(data[body:])
            return entries
        entries[name] = (mode, data[body : body + filesize], rdev)
        pos = body + filesize + (-filesize % 4)


def test_archive_round_trips_through_a_newc_reader() -> None:
    entries = parse_newc(build_initramfs(BUSYBOX))
    mode, body, _ = entries["bin/busybox"]
    assert stat.S_ISREG(mode) and mode & 0o111 and body == BUSYBOX
    assert entries["init"][1] == DEFAULT_INIT.encode()
    assert entries["init"][0] & 0o111


def test_console_is_a_character_device_5_1() -> None:
    mode, _, rdev = parse_newc(build_initramfs(BUSYBOX))["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5, 1)


def test_applets_are_symlinks_to_busybox() -> None:
    entries = parse_newc(build_initramfs(BUSYBOX))
    for name, target in (("bin/sh", b"busybox"), ("bin/awk", b"busybox"), ("sbin/reboot", b"../bin/busybox")):
        mode, body, _ = entries[name]
        assert stat.S_ISLNK(mode) and body == target


def test_directories_come_before_their_contents() -> None:
    names = list(parse_newc(build_initramfs(BUSYBOX)))
    assert names.index("bin") < names.index("bin/busybox")
    assert names.index("dev") < names.index("dev/console")


def test_same_inputs_give_the_same_bytes() -> None:
    assert build_initramfs(BUSYBOX, "#!/bin/sh\n") == build_initramfs(BUSYBOX, "#!/bin/sh\n")


def test_default_init_ends_with_a_reset_not_a_power_off() -> None:
    assert DEFAULT_INIT.rstrip().endswith("reboot -f")


def test_not_an_elf_busybox_is_refused() -> None:
    with pytest.raises(ValueError, match="not an ELF"):
        build_initramfs(b"#!/bin/sh\n")


def test_command_line_writes_the_archive_with_a_custom_init(tmp_path: Path) -> None:
    (tmp_path / "busybox").write_bytes(BUSYBOX)
    (tmp_path / "init.sh").write_text("#!/bin/sh\necho hi\n")
    out = tmp_path / "out.cpio"
    assert main(["--busybox", str(tmp_path / "busybox"), "-o", str(out), "--init", str(tmp_path / "init.sh")]) == 0
    assert parse_newc(out.read_bytes())["init"][1] == b"#!/bin/sh\necho hi\n"

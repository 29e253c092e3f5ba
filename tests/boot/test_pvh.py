"""PVH ELF loading (Xen docs/misc/pvh.pandoc) and the errors for bad images."""

import struct

import pytest

from replayvm.boot.elf import parse_elf
from replayvm.boot.pvh import (
    CMDLINE_ADDR,
    HVM_START_MAGIC,
    MEMMAP_ADDR,
    START_INFO_ADDR,
    plan_pvh_boot,
)
from replayvm.errors import ConfigError
from tests.elfimage import make_elf

RAM = 64 << 20


def test_plan_loads_segment_and_start_info() -> None:
    plan = plan_pvh_boot(make_elf(memsz=64), RAM, "console=ttyS0")
    writes = dict(plan.writes)
    assert plan.entry == 0x100000
    assert writes[0x100000] == b"\xf4" * 16 + bytes(48)  # .bss zero-filled
    assert writes[CMDLINE_ADDR] == b"console=ttyS0\0"
    magic, version, _, _, _, cmdline, _, memmap, entries, _ = struct.unpack("<IIIIQQQQII", writes[START_INFO_ADDR])
    assert (magic, version, cmdline, memmap) == (HVM_START_MAGIC, 1, CMDLINE_ADDR, MEMMAP_ADDR)
    mm = [struct.unpack_from("<QQII", writes[MEMMAP_ADDR], 24 * i) for i in range(entries)]
    assert mm[3][:3] == (0x100000, RAM - 0x100000 - 0x20000, 1)
    assert sum(size for _, size, kind, _ in mm if kind == 1) == 0x9FC00 + RAM - 0x120000


def test_not_an_elf_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an ELF"):
        plan_pvh_boot(b"MZ\x90\x00" * 20, RAM, "")


def test_elf_without_pvh_note_is_refused() -> None:
    with pytest.raises(ConfigError, match="no PVH entry note"):
        plan_pvh_boot(make_elf(entry_note=None), RAM, "")


def test_image_larger_than_ram_is_refused() -> None:
    with pytest.raises(ConfigError, match="use --memory"):
        plan_pvh_boot(make_elf(memsz=RAM), RAM, "")


def test_entry_outside_kernel_is_refused() -> None:
    with pytest.raises(ConfigError, match="outside the loaded kernel"):
        plan_pvh_boot(make_elf(entry_note=0x500000), RAM, "")


def test_truncated_program_headers_are_refused() -> None:
    with pytest.raises(ConfigError):
        parse_elf(make_elf()[:80])


@pytest.mark.parametrize("cut", range(0, 200, 7))
def test_any_truncation_gives_config_error_or_plan(cut: int) -> None:
    data = make_elf()[:cut]
    try:
        plan_pvh_boot(data, RAM, "")
    except ConfigError:
        pass

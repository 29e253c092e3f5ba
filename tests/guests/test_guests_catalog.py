"""The guest catalog, the committed images and the expected outputs agree."""

from __future__ import annotations

import struct
import zlib

import pytest

from replayvm.errors import ConfigError
from replayvm.guests import build, catalog

ELF_PT_LOAD = 1
KERNEL_BASE = 0x100000


def load_segments(elf: bytes) -> list[tuple[int, int, int]]:
    """(physical address, file size, memory size) of each PT_LOAD."""
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _, _, _, paddr, filesz, memsz = struct.unpack_from("<IIQQQQQ", elf, phoff + i * phentsize)
        if p_type == ELF_PT_LOAD:
            segments.append((paddr, filesz, memsz))
    return segments


ALL_NAMES = [g.name for g in catalog.all_guests()]


def test_catalog_lists_every_guest_source() -> None:
    assert sorted(ALL_NAMES) == build.guest_names()


def test_virtio_guests_are_listed_apart_until_the_machine_has_virtio() -> None:
    assert not set(catalog.names()) & {g.name for g in catalog.VIRTIO_GUESTS}
    assert all(g.virtio for g in catalog.VIRTIO_GUESTS) and not any(g.virtio for g in catalog.GUESTS)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_guest_image_is_a_pvh_elf_loaded_at_1_mib(name: str) -> None:
    elf = catalog.image_path(name).read_bytes()
    entry = build.pvh_entry(elf)
    segments = load_segments(elf)
    assert min(paddr for paddr, _, _ in segments) == KERNEL_BASE
    assert any(paddr <= entry < paddr + filesz for paddr, filesz, _ in segments)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_guest_expected_files_match_catalog(name: str) -> None:
    guest = catalog.get(name)
    assert catalog.expected_status(name) == guest.exit_status
    output = catalog.expected_output(name)
    assert output.endswith("\n")
    assert catalog.deterministic_lines(output) == output
    if guest.input_path is not None:
        assert guest.input_path.is_file()
    if guest.console_input_path is not None:
        assert guest.console_input_path.is_file()


def test_unknown_guest_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown guest 'nope'"):
        catalog.get("nope")


def test_deterministic_lines_drops_var_lines_and_carriage_returns() -> None:
    raw = b"a: one\r\n[var] a: clock 12:00\r\na: two\r\n"
    assert catalog.deterministic_lines(raw) == "a: one\na: two\n"


def test_deterministic_lines_keeps_an_unterminated_last_line() -> None:
    assert catalog.deterministic_lines(b"x\r\ny") == "x\ny\n"


def xorshift64_bytes(seed: int, count: int) -> bytes:
    mask = (1 << 64) - 1
    words, x = [], seed
    for _ in range(count):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        words.append(x)
    return struct.pack(f"<{count}Q", *words)


def test_crc_guest_expected_result_is_zlib_crc32_of_its_data() -> None:
    data = xorshift64_bytes(0x2545F4914F6CDD1D, (16 << 20) // 8)
    assert f"crc: crc32 = 0x{zlib.crc32(data):08x}\n" in catalog.expected_output("crc")


def test_demo_guest_expected_crc_is_zlib_crc32_of_its_data() -> None:
    crc = zlib.crc32(xorshift64_bytes(1, (64 << 10) // 8))
    assert f"xorshift64 data: 0x{crc:08x}\n" in catalog.expected_output("demo")

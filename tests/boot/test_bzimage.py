"""Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst) on synthetic bzImages."""

from __future__ import annotations

import struct

import pytest

from replayvm.boot.bzimage import (
    BP_E820_ENTRIES,
    BP_E820_TABLE,
    CAN_USE_HEAP,
    CMDLINE_ADDR,
    GDT_ADDR,
    HDR_CMD_LINE_PTR,
    HDR_LOADFLAGS,
    HDR_RAMDISK_IMAGE,
    HDR_RAMDISK_SIZE,
    HDR_TYPE_OF_LOADER,
    KERNEL_LOAD_ADDR,
    LOADER_TYPE_UNDEFINED,
    PD_ADDR,
    PML4_ADDR,
    ZERO_PAGE_ADDR,
    is_bzimage,
    plan_bzimage_boot,
)
from replayvm.boot.pvh import memory_map
from replayvm.errors import ConfigError
from replayvm.machine import Machine, MachineConfig
from tests.bzimage import SETUP_SECTS, make_bzimage
from tests.elfimage import make_elf

RAM = 64 << 20


def test_magic_at_0x202_identifies_a_bzimage() -> None:
    assert is_bzimage(make_bzimage())
    assert not is_bzimage(make_elf())


def test_plan_loads_kernel_at_1mib_and_enters_startup_64() -> None:
    image = make_bzimage(b"\x90\xf4")
    plan = plan_bzimage_boot(image, RAM, "console=ttyS0")
    writes = dict(plan.writes)
    assert writes[KERNEL_LOAD_ADDR] == image[(SETUP_SECTS + 1) * 512 :]
    assert plan.entry == KERNEL_LOAD_ADDR + 0x200
    assert plan.boot_params == ZERO_PAGE_ADDR
    assert writes[CMDLINE_ADDR] == b"console=ttyS0\0"


def test_zero_page_has_setup_header_and_loader_fields() -> None:
    image = make_bzimage()
    zero = dict(plan_bzimage_boot(image, RAM, "x").writes)[ZERO_PAGE_ADDR]
    assert len(zero) == 4096
    assert zero[0x202:0x206] == b"HdrS"
    assert zero[0x258:0x26C] == image[0x258:0x26C]  # copied up to the header's end
    assert zero[HDR_TYPE_OF_LOADER] == LOADER_TYPE_UNDEFINED
    assert zero[HDR_LOADFLAGS] & CAN_USE_HEAP
    assert struct.unpack_from("<I", zero, HDR_CMD_LINE_PTR)[0] == CMDLINE_ADDR
    assert struct.unpack_from("<I", zero, HDR_RAMDISK_SIZE)[0] == 0


def test_e820_map_is_the_pvh_memory_map() -> None:
    zero = dict(plan_bzimage_boot(make_bzimage(), RAM, "").writes)[ZERO_PAGE_ADDR]
    n = zero[BP_E820_ENTRIES]
    table = [struct.unpack_from("<QQI", zero, BP_E820_TABLE + 20 * i) for i in range(n)]
    assert table == [tuple(e) for e in memory_map(RAM)]


def test_initrd_goes_page_aligned_at_the_top_of_usable_ram() -> None:
    initrd = b"\x07" * 5000
    plan = plan_bzimage_boot(make_bzimage(), RAM, "", initrd)
    assert plan.initrd is not None
    addr, size = plan.initrd
    assert size == 5000 and addr % 4096 == 0
    usable_top = max(b + n for b, n, kind in memory_map(RAM) if kind == 1)
    assert usable_top - 4096 * 2 <= addr and addr + size <= usable_top
    writes = dict(plan.writes)
    assert writes[addr] == initrd
    zero = writes[ZERO_PAGE_ADDR]
    assert struct.unpack_from("<II", zero, HDR_RAMDISK_IMAGE) == (addr, 5000)


def test_identity_map_covers_4gib_with_2mib_pages() -> None:
    writes = dict(plan_bzimage_boot(make_bzimage(), RAM, "").writes)
    pml4 = struct.unpack_from("<Q", writes[PML4_ADDR])[0]
    assert pml4 & 1 and pml4 & ~0xFFF == PML4_ADDR + 0x1000
    pds = writes[PD_ADDR]
    entries = [struct.unpack_from("<Q", pds, 8 * i)[0] for i in range(len(pds) // 8)]
    assert len(entries) == 2048
    assert all(e == (i << 21) | 0x83 for i, e in enumerate(entries))


def test_gdt_has_64bit_code_at_0x10_and_data_at_0x18() -> None:
    gdt = dict(plan_bzimage_boot(make_bzimage(), RAM, "").writes)[GDT_ADDR]
    code, data = struct.unpack_from("<QQ", gdt, 0x10)
    assert code >> 53 & 1  # L
    assert (code >> 40) & 0x9A == 0x9A and (data >> 40) & 0x92 == 0x92


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (make_elf(), "not a Linux bzImage"),
        (make_bzimage(magic=b"HdrX"), "not a Linux bzImage"),
        (make_bzimage(version=0x20B), "too old"),
        (make_bzimage(xloadflags=0), "no 64-bit entry"),
        (make_bzimage(syssize=0x10000), "truncated"),
        (make_bzimage()[:0x270], "truncated"),
    ],
)
def test_bad_images_are_config_errors(image: bytes, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        plan_bzimage_boot(image, RAM, "")


def test_kernel_that_cannot_decompress_in_ram_is_refused() -> None:
    with pytest.raises(ConfigError, match="use --memory"):
        plan_bzimage_boot(make_bzimage(init_size=RAM), RAM, "")


def test_kernel_plus_initrd_larger_than_ram_is_refused() -> None:
    with pytest.raises(ConfigError, match="kernel and initrd"):
        plan_bzimage_boot(make_bzimage(), RAM, "", bytes(50 << 20))


def test_command_line_longer_than_the_kernel_takes_is_refused() -> None:
    with pytest.raises(ConfigError, match="command line too long"):
        plan_bzimage_boot(make_bzimage(), RAM, "x" * 3000)


# startup_64 of a tiny "kernel": prove 64-bit mode and RSI = boot_params by
# exiting (isa-debug-exit) with the zero page's type_of_loader byte, read with
# a 64-bit-only addressing form.
#   mov rax, rsi              48 89 f0
#   movzx eax, byte [rax+0x210]  0f b6 80 10 02 00 00
#   out 0xf4, al              e6 f4
STARTUP_64 = bytes.fromhex("4889f0") + bytes.fromhex("0fb68010020000") + bytes.fromhex("e6f4")


def test_machine_boots_a_bzimage_in_long_mode_with_rsi_at_boot_params() -> None:
    machine = Machine(MachineConfig(64, "", b"initrd"), make_bzimage(STARTUP_64), image_name="tiny.elf")
    result = machine.run(max_insns=1000)
    assert result.reason == "debug-exit"
    assert result.status == (LOADER_TYPE_UNDEFINED << 1) | 1


def test_initrd_with_a_pvh_kernel_is_refused() -> None:
    with pytest.raises(ConfigError, match="--initrd needs a Linux bzImage"):
        Machine(MachineConfig(64, "", b"initrd"), make_elf())


# startup_64 that prints Linux's last panic line on COM1 and spins forever.
#   lea rsi, [rip+14]; mov dx, 0x3f8; 1: lodsb; test al, al; jz 2f; out dx, al; jmp 1b; 2: jmp 2b
PANIC_PRINTER = bytes.fromhex("488d350e00000066baf803ac84c07403eeebf8ebfe")
PANIC_LINE = b"[    1.0] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---\r\n"


def test_a_kernel_panic_stops_the_machine_naming_icount_and_rip() -> None:
    out = bytearray()
    image = make_bzimage(PANIC_PRINTER + PANIC_LINE + b"\0")
    result = Machine(MachineConfig(64, ""), image, serial_out=out.extend).run(max_insns=1_000_000)
    assert result.reason == "panic"
    assert result.status == 4
    assert "guest kernel panicked at icount" in result.message and "RIP 0x1002" in result.message
    assert result.message.endswith("Attempted to kill init!")
    assert bytes(out) == PANIC_LINE

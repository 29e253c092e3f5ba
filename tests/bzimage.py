"""Synthetic Linux bzImages (Documentation/arch/x86/boot.rst) for tests."""

from __future__ import annotations

import struct

SETUP_SECTS = 1


def make_bzimage(
    payload: bytes = b"\xf4",
    *,
    version: int = 0x20F,
    xloadflags: int = 1,
    init_size: int = 0x100000,
    pref_address: int = 0x1000000,
    magic: bytes = b"HdrS",
    syssize: int | None = None,
) -> bytes:
    """A bzImage whose protected-mode part has ``payload`` at startup_64 (+0x200)."""
    setup = bytearray((SETUP_SECTS + 1) * 512)
    setup[0x1F1] = SETUP_SECTS
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200:0x202] = b"\xeb\x6a"  # header ends at 0x26C, as in Linux 6.1
    setup[0x202:0x206] = magic
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", setup, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<I", setup, 0x230, 0x200000)  # kernel_alignment
    setup[0x234] = 1  # relocatable
    struct.pack_into("<H", setup, 0x236, xloadflags)
    struct.pack_into("<I", setup, 0x238, 2047)  # cmdline_size
    struct.pack_into("<Q", setup, 0x258, pref_address)
    struct.pack_into("<I", setup, 0x260, init_size)
    kernel = bytearray(0x1000)
    kernel[0x200 : 0x200 + len(payload)] = payload
    struct.pack_into("<I", setup, 0x1F4, len(kernel) // 16 if syssize is None else syssize)
    return bytes(setup + kernel)


# startup_64 that exits (isa-debug-exit) with the first byte of the initrd:
#   mov eax, [rsi+0x218] (ramdisk_image); movzx eax, byte [rax]; out 0xf4, al
EXIT_WITH_INITRD_BYTE = bytes.fromhex("8b8618020000") + bytes.fromhex("0fb600") + bytes.fromhex("e6f4")

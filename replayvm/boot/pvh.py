"""PVH boot (Xen docs/misc/pvh.pandoc; xen/include/public/arch-x86/hvm/start_info.h).

A PVH kernel is an ELF with a ``XEN_ELFNOTE_PHYS32_ENTRY`` note. The loader
copies its PT_LOAD segments to their physical addresses, writes a
``struct hvm_start_info`` (command line, memory map) in low memory and enters
the note's address in 32-bit protected mode with paging off and EBX pointing
at the start info. QEMU (``-kernel``), Firecracker and cloud-hypervisor boot
the same images this way, which is how ReplayVM is cross-checked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from replayvm.boot.elf import ElfImage, parse_elf
from replayvm.errors import ConfigError

XEN_ELFNOTE_PHYS32_ENTRY = 18
HVM_START_MAGIC = 0x336EC578

START_INFO_ADDR = 0x6000
MEMMAP_ADDR = 0x6040
CMDLINE_ADDR = 0x7000
CMDLINE_MAX = 0x2000 - 1  # up to 0x8FFF, NUL included
LOW_RESERVED_END = 0x9000
KERNEL_MIN_ADDR = 0x100000

E820_RAM = 1
E820_RESERVED = 2


@dataclass(frozen=True, slots=True)
class BootPlan:
    entry: int
    start_info: int
    writes: tuple[tuple[int, bytes], ...]  # (paddr, bytes) including zero-filled .bss
    kernel_end: int


def pvh_entry(image: ElfImage) -> int | None:
    for note in image.notes:
        if note.name == b"Xen" and note.type == XEN_ELFNOTE_PHYS32_ENTRY and len(note.desc) in (4, 8):
            return int.from_bytes(note.desc, "little") & 0xFFFFFFFF
    return None


FIRMWARE_TOP_RESERVED = 0x20000


def memory_map(ram_size: int) -> list[tuple[int, int, int]]:
    """The PC memory map ReplayVM reports, entry for entry what a PVH guest gets
    from QEMU 7.2 ``-M pc`` with SeaBIOS: low RAM up to the EBDA, the VGA/BIOS
    hole, high RAM, the top 128 KiB reserved (SeaBIOS keeps its tables
    there), the BIOS flash below 4 GiB and the AMD HyperTransport hole at
    1012 GiB. Guests that print their memory map then print the same lines."""
    top = ram_size - FIRMWARE_TOP_RESERVED
    return [
        (0, 0x9FC00, E820_RAM),
        (0x9FC00, 0x400, E820_RESERVED),
        (0xF0000, 0x10000, E820_RESERVED),
        (0x100000, top - 0x100000, E820_RAM),
        (top, FIRMWARE_TOP_RESERVED, E820_RESERVED),
        (0xFFFC0000, 0x40000, E820_RESERVED),
        (0xFD_0000_0000, 0x3_0000_0000, E820_RESERVED),
    ]


def plan_pvh_boot(data: bytes, ram_size: int, cmdline: str, what: str = "image") -> BootPlan:
    image = parse_elf(data, what)
    entry = pvh_entry(image)
    if entry is None:
        raise ConfigError(f"{what}: ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); not a PVH kernel")
    writes: list[tuple[int, bytes]] = []
    end = 0
    for seg in image.segments:
        lo, hi = seg.paddr, seg.paddr + seg.memsz
        if lo < KERNEL_MIN_ADDR:
            raise ConfigError(f"{what}: segment at {lo:#x} overlaps low memory (PVH kernels load at >= 1 MiB)")
        if hi > ram_size:
            raise ConfigError(
                f"{what}: needs memory up to {hi:#x} but the guest has only {ram_size >> 20} MiB (use --memory)"
            )
        writes.append((lo, seg.data + bytes(seg.memsz - len(seg.data))))
        end = max(end, hi)
    if not KERNEL_MIN_ADDR <= entry < end:
        raise ConfigError(f"{what}: PVH entry {entry:#x} is outside the loaded kernel")

    raw_cmdline = cmdline.encode()
    if len(raw_cmdline) > CMDLINE_MAX or b"\0" in raw_cmdline:
        raise ConfigError(f"command line too long or contains NUL (max {CMDLINE_MAX} bytes)")
    writes.append((CMDLINE_ADDR, raw_cmdline + b"\0"))
    mm = memory_map(ram_size)
    writes.append((MEMMAP_ADDR, b"".join(struct.pack("<QQII", a, s, t, 0) for a, s, t in mm)))
    start_info = struct.pack("<IIIIQQQQII", HVM_START_MAGIC, 1, 0, 0, 0, CMDLINE_ADDR, 0, MEMMAP_ADDR, len(mm), 0)
    writes.append((START_INFO_ADDR, start_info))
    return BootPlan(entry, START_INFO_ADDR, tuple(writes), end)

"""Linux bzImage, 64-bit boot protocol (Documentation/arch/x86/boot.rst).

A bzImage starts with the real-mode setup code, whose *setup header* (at
0x1F1, magic ``HdrS`` at 0x202) describes the image. ReplayVM has no BIOS,
so it boots the way Firecracker and QEMU's ``-kernel`` loaders for 64-bit
guests do ("64-bit BOOT PROTOCOL" in boot.rst):

* the protected-mode kernel (everything after the ``setup_sects + 1``
  sectors of setup code) is loaded at 1 MiB;
* a zero page (``struct boot_params``) gets a copy of the setup header, the
  loader's fields (type_of_loader, loadflags, cmd_line_ptr, ramdisk_*) and
  the e820 memory map -- the same map the PVH path reports
  (:func:`replayvm.boot.pvh.memory_map`);
* a GDT with flat __BOOT_CS (0x10, 64-bit code) and __BOOT_DS (0x18), and
  identity page tables covering 4 GiB with 2 MiB pages (the CPUID model has
  no 1 GiB pages);
* the CPU enters long mode at load address + 0x200 (``startup_64``) with
  RSI = the zero page and interrupts off.

The image is untrusted input: every field is checked before use and every
problem is a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from replayvm.boot.pvh import memory_map
from replayvm.errors import ConfigError

# Setup header offsets (boot.rst, "THE REAL-MODE KERNEL HEADER"), the same in
# the image and in struct boot_params.
HDR_SETUP_SECTS = 0x1F1
HDR_SYSSIZE = 0x1F4
HDR_BOOT_FLAG = 0x1FE
HDR_JUMP = 0x200
HDR_HEADER = 0x202
HDR_VERSION = 0x206
HDR_TYPE_OF_LOADER = 0x210
HDR_LOADFLAGS = 0x211
HDR_CODE32_START = 0x214
HDR_RAMDISK_IMAGE = 0x218
HDR_RAMDISK_SIZE = 0x21C
HDR_HEAP_END_PTR = 0x224
HDR_CMD_LINE_PTR = 0x228
HDR_INITRD_ADDR_MAX = 0x22C
HDR_KERNEL_ALIGNMENT = 0x230
HDR_RELOCATABLE_KERNEL = 0x234
HDR_XLOADFLAGS = 0x236
HDR_CMDLINE_SIZE = 0x238
HDR_PREF_ADDRESS = 0x258
HDR_INIT_SIZE = 0x260

# struct boot_params fields outside the setup header (arch/x86/include/uapi/asm/bootparam.h).
BP_EXT_RAMDISK_IMAGE = 0x0C0
BP_EXT_RAMDISK_SIZE = 0x0C4
BP_EXT_CMD_LINE_PTR = 0x0C8
BP_E820_ENTRIES = 0x1E8
BP_E820_TABLE = 0x2D0
BP_SIZE = 0x1000
E820_MAX_ENTRIES_ZEROPAGE = 128

HDRS_MAGIC = b"HdrS"
BOOT_FLAG = 0xAA55
MIN_PROTOCOL = 0x20C  # 2.12: xloadflags
LOADER_TYPE_UNDEFINED = 0xFF  # boot.rst: "0xFF: undefined" (what Firecracker uses)
LOADED_HIGH = 0x01
CAN_USE_HEAP = 0x80
XLF_KERNEL_64 = 0x01
SETUP_SECTS_DEFAULT = 4  # "if this field is 0, the real value is 4"
SECTOR = 512

# Guest-physical layout of what the loader writes (as Firecracker lays it out).
GDT_ADDR = 0x500
ZERO_PAGE_ADDR = 0x7000
PML4_ADDR = 0x9000
PDPT_ADDR = 0xA000
PD_ADDR = 0xB000  # four page directories: 0xB000-0xEFFF
CMDLINE_ADDR = 0x20000
CMDLINE_LIMIT = 0x10000  # up to 0x2FFFF, NUL included
KERNEL_LOAD_ADDR = 0x100000
ENTRY_64_OFFSET = 0x200
HEAP_END_PTR = 0xFE00  # boot.rst: heap end, relative to the setup code (0x10000 - 0x200)
PAGE_SIZE = 0x1000

BOOT_CS = 0x10
BOOT_DS = 0x18
# GDT entries: null, null, 64-bit code (L=1, DPL 0), flat 4 GiB data.
GDT = struct.pack("<4Q", 0, 0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF)

PTE_PRESENT_RW = 0x3
PDE_LARGE = 0x80
IDENTITY_MAP_GIB = 4


@dataclass(frozen=True, slots=True)
class SetupHeader:
    version: int
    setup_sects: int
    syssize: int
    loadflags: int
    xloadflags: int
    initrd_addr_max: int
    kernel_alignment: int
    relocatable: bool
    cmdline_size: int
    pref_address: int
    init_size: int
    header_end: int  # offset just past the setup header, in the image and the zero page

    @property
    def kernel_offset(self) -> int:
        """File offset of the protected-mode kernel."""
        return (self.setup_sects + 1) * SECTOR


@dataclass(frozen=True, slots=True)
class LongModeBootPlan:
    """Everything the machine does to boot: RAM writes, then a long-mode entry."""

    entry: int  # RIP
    boot_params: int  # RSI
    cr3: int
    gdt_base: int
    gdt_limit: int
    writes: tuple[tuple[int, bytes], ...]
    kernel_end: int  # end of the memory the kernel may use while it decompresses itself
    initrd: tuple[int, int] | None  # (address, size)


def is_bzimage(data: bytes) -> bool:
    """True for a Linux boot-protocol image (the ``HdrS`` magic at 0x202)."""
    return data[HDR_HEADER : HDR_HEADER + 4] == HDRS_MAGIC


def parse_setup_header(data: bytes, what: str = "image") -> SetupHeader:
    if len(data) < HDR_INIT_SIZE + 4 or not is_bzimage(data):
        raise ConfigError(f"{what} is not a Linux bzImage (no 'HdrS' setup header at 0x202)")
    version = struct.unpack_from("<H", data, HDR_VERSION)[0]
    if version < MIN_PROTOCOL:
        raise ConfigError(
            f"{what}: Linux boot protocol {version >> 8}.{version & 0xFF} is too old "
            f"(the 64-bit entry needs >= {MIN_PROTOCOL >> 8}.{MIN_PROTOCOL & 0xFF})"
        )
    if struct.unpack_from("<H", data, HDR_BOOT_FLAG)[0] != BOOT_FLAG:
        raise ConfigError(f"{what}: bzImage boot_flag is not 0xAA55")
    xloadflags = struct.unpack_from("<H", data, HDR_XLOADFLAGS)[0]
    if not xloadflags & XLF_KERNEL_64:
        raise ConfigError(f"{what}: bzImage has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)")
    setup_sects = data[HDR_SETUP_SECTS] or SETUP_SECTS_DEFAULT
    header_end = HDR_HEADER + data[HDR_JUMP + 1]  # boot.rst: 0x0202 + the byte at 0x0201
    if not HDR_INIT_SIZE + 4 <= header_end <= BP_SIZE or header_end > len(data):
        raise ConfigError(f"{what}: bzImage setup header has a bad length ({header_end:#x})")
    alignment = struct.unpack_from("<I", data, HDR_KERNEL_ALIGNMENT)[0]
    if alignment & (alignment - 1) or not PAGE_SIZE <= alignment <= 1 << 30:
        raise ConfigError(f"{what}: bzImage kernel_alignment {alignment:#x} is not a power of two >= 4 KiB")
    return SetupHeader(
        version=version,
        setup_sects=setup_sects,
        syssize=struct.unpack_from("<I", data, HDR_SYSSIZE)[0],
        loadflags=data[HDR_LOADFLAGS],
        xloadflags=xloadflags,
        initrd_addr_max=struct.unpack_from("<I", data, HDR_INITRD_ADDR_MAX)[0],
        kernel_alignment=alignment,
        relocatable=bool(data[HDR_RELOCATABLE_KERNEL]),
        cmdline_size=struct.unpack_from("<I", data, HDR_CMDLINE_SIZE)[0],
        pref_address=struct.unpack_from("<Q", data, HDR_PREF_ADDRESS)[0],
        init_size=struct.unpack_from("<I", data, HDR_INIT_SIZE)[0],
        header_end=header_end,
    )


def identity_page_tables() -> list[tuple[int, bytes]]:
    """PML4 -> one PDPT -> four page directories of 2 MiB pages: 0-4 GiB, RW, ring 0."""
    pml4 = struct.pack("<Q", PDPT_ADDR | PTE_PRESENT_RW).ljust(PAGE_SIZE, b"\0")
    pdpt = b"".join(struct.pack("<Q", (PD_ADDR + i * PAGE_SIZE) | PTE_PRESENT_RW) for i in range(IDENTITY_MAP_GIB))
    pds = b"".join(struct.pack("<Q", (i << 21) | PDE_LARGE | PTE_PRESENT_RW) for i in range(IDENTITY_MAP_GIB * 512))
    return [(PML4_ADDR, pml4), (PDPT_ADDR, pdpt.ljust(PAGE_SIZE, b"\0")), (PD_ADDR, pds)]


def _mib(n: int) -> int:
    return -(-n // (1 << 20))


def plan_bzimage_boot(
    data: bytes, ram_size: int, cmdline: str, initrd: bytes | None = None, what: str = "image"
) -> LongModeBootPlan:
    hdr = parse_setup_header(data, what)
    start = hdr.kernel_offset
    size = hdr.syssize * 16
    if start >= len(data) or size == 0 or start + size > len(data):
        raise ConfigError(
            f"{what}: bzImage is truncated (setup_sects {hdr.setup_sects}, syssize {hdr.syssize:#x}, "
            f"file {len(data)} bytes)"
        )
    kernel = data[start:]

    # The decompressor runs at max(load address aligned up, pref_address) and
    # needs init_size bytes there (boot.rst, "init_size"; head_64.S).
    run_at = KERNEL_LOAD_ADDR
    if hdr.relocatable:
        run_at = (run_at + hdr.kernel_alignment - 1) & ~(hdr.kernel_alignment - 1)
    run_at = max(run_at, hdr.pref_address)
    kernel_end = max(run_at + hdr.init_size, KERNEL_LOAD_ADDR + len(kernel))
    mm = memory_map(ram_size)
    ram_top = max(base + length for base, length, kind in mm if kind == 1)  # end of usable RAM
    if kernel_end > ram_top:
        raise ConfigError(
            f"{what}: the kernel needs memory up to {kernel_end:#x} ({_mib(kernel_end)} MiB) to decompress, "
            f"but the guest has only {ram_size >> 20} MiB (use --memory)"
        )

    raw_cmdline = cmdline.encode()
    limit = min(hdr.cmdline_size, CMDLINE_LIMIT - 1)
    if len(raw_cmdline) > limit or b"\0" in raw_cmdline:
        raise ConfigError(f"kernel command line too long or contains NUL (max {limit} bytes for this kernel)")

    zero = bytearray(BP_SIZE)
    zero[HDR_SETUP_SECTS : hdr.header_end] = data[HDR_SETUP_SECTS : hdr.header_end]
    zero[HDR_TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED
    zero[HDR_LOADFLAGS] = hdr.loadflags | CAN_USE_HEAP
    struct.pack_into("<I", zero, HDR_CODE32_START, KERNEL_LOAD_ADDR)
    struct.pack_into("<H", zero, HDR_HEAP_END_PTR, HEAP_END_PTR)
    struct.pack_into("<I", zero, HDR_CMD_LINE_PTR, CMDLINE_ADDR)
    struct.pack_into("<I", zero, BP_EXT_CMD_LINE_PTR, 0)
    if len(mm) > E820_MAX_ENTRIES_ZEROPAGE:  # pragma: no cover - the map has five entries
        raise ConfigError("memory map has too many entries for the zero page")
    zero[BP_E820_ENTRIES] = len(mm)
    for i, (base, length, kind) in enumerate(mm):
        struct.pack_into("<QQI", zero, BP_E820_TABLE + 20 * i, base, length, kind)

    writes: list[tuple[int, bytes]] = [(KERNEL_LOAD_ADDR, kernel)]
    placed: tuple[int, int] | None = None
    if initrd:
        # At the top of usable RAM, page aligned, below initrd_addr_max (as QEMU places it).
        top = min(ram_top, hdr.initrd_addr_max + 1)
        addr = (top - len(initrd)) & ~(PAGE_SIZE - 1)
        if addr < kernel_end:
            need = kernel_end + len(initrd) + (ram_size - ram_top)
            raise ConfigError(
                f"{what}: kernel and initrd ({len(initrd)} bytes) need at least {_mib(need)} MiB of RAM, "
                f"the guest has {ram_size >> 20} MiB (use --memory)"
            )
        struct.pack_into("<I", zero, HDR_RAMDISK_IMAGE, addr)
        struct.pack_into("<I", zero, HDR_RAMDISK_SIZE, len(initrd))
        writes.append((addr, initrd))
        placed = (addr, len(initrd))

    writes.append((ZERO_PAGE_ADDR, bytes(zero)))
    writes.append((CMDLINE_ADDR, raw_cmdline + b"\0"))
    writes.append((GDT_ADDR, GDT))
    writes.extend(identity_page_tables())
    return LongModeBootPlan(
        entry=KERNEL_LOAD_ADDR + ENTRY_64_OFFSET,
        boot_params=ZERO_PAGE_ADDR,
        cr3=PML4_ADDR,
        gdt_base=GDT_ADDR,
        gdt_limit=len(GDT) - 1,
        writes=tuple(writes),
        kernel_end=kernel_end,
        initrd=placed,
    )

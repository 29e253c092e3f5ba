"""Hand-made ELF images for loader and CLI tests."""

import struct

from replayvm.boot.pvh import XEN_ELFNOTE_PHYS32_ENTRY


def make_elf(
    paddr: int = 0x100000, body: bytes = b"\xf4" * 16, memsz: int | None = None, entry_note: int | None = 0x100000
) -> bytes:
    """A minimal ELF64 with one PT_LOAD and (optionally) a PVH note."""
    note = b""
    if entry_note is not None:
        note = struct.pack("<III", 4, 4, XEN_ELFNOTE_PHYS32_ENTRY) + b"Xen\0" + struct.pack("<I", entry_note)
    phnum = 2 if note else 1
    ehdr_size, ph_size = 64, 56
    data_off = ehdr_size + ph_size * phnum
    ehdr = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, paddr, ehdr_size, 0, 0, ehdr_size, ph_size, phnum, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 7, data_off, paddr, paddr, len(body), memsz or len(body), 0x1000)
    phdrs = load
    if note:
        phdrs += struct.pack("<IIQQQQQQ", 4, 4, data_off + len(body), 0, 0, len(note), len(note), 4)
    return ehdr + phdrs + body + note

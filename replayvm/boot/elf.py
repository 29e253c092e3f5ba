"""Just enough ELF (System V gABI, ch. 5 program loading) to load a kernel.

The image is untrusted input: every offset and size is checked against the
file before use, and every problem is a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from replayvm.errors import ConfigError

PT_LOAD = 1
PT_NOTE = 4
ELFCLASS32 = 1
ELFCLASS64 = 2
EM_386 = 3
EM_X86_64 = 62
MAX_PHDRS = 256


@dataclass(frozen=True, slots=True)
class Segment:
    paddr: int
    data: bytes
    memsz: int


@dataclass(frozen=True, slots=True)
class Note:
    name: bytes
    type: int
    desc: bytes


@dataclass(frozen=True, slots=True)
class ElfImage:
    entry: int
    segments: tuple[Segment, ...]
    notes: tuple[Note, ...]
    elf_class: int


def is_elf(data: bytes) -> bool:
    return data[:4] == b"\x7fELF"


def parse_elf(data: bytes, what: str = "image") -> ElfImage:
    if not is_elf(data):
        raise ConfigError(f"{what} is not an ELF file")
    if len(data) < 52:
        raise ConfigError(f"{what}: truncated ELF header")
    elf_class, endian = data[4], data[5]
    if endian != 1:
        raise ConfigError(f"{what}: not a little-endian ELF")
    if elf_class == ELFCLASS64:
        if len(data) < 64:
            raise ConfigError(f"{what}: truncated ELF header")
        (_, machine, _, entry, phoff, _, _, _, phentsize, phnum) = struct.unpack_from("<HHIQQQIHHH", data, 16)
        ph_fmt, want = "<IIQQQQQQ", 56
    elif elf_class == ELFCLASS32:
        (_, machine, _, entry, phoff, _, _, _, phentsize, phnum) = struct.unpack_from("<HHIIIIIHHH", data, 16)
        ph_fmt, want = "<IIIIIIII", 32
    else:
        raise ConfigError(f"{what}: unknown ELF class {elf_class}")
    if machine not in (EM_X86_64, EM_386):
        raise ConfigError(f"{what}: ELF machine {machine} is not x86")
    if phnum == 0 or phnum > MAX_PHDRS or phentsize < want or phoff + phnum * phentsize > len(data):
        raise ConfigError(f"{what}: bad ELF program header table")

    segments: list[Segment] = []
    notes: list[Note] = []
    for i in range(phnum):
        fields = struct.unpack_from(ph_fmt, data, phoff + i * phentsize)
        if elf_class == ELFCLASS64:
            p_type, _, p_offset, _, p_paddr, p_filesz, p_memsz, _ = fields
        else:
            p_type, p_offset, _, p_paddr, p_filesz, p_memsz, _, _ = fields
        if p_type not in (PT_LOAD, PT_NOTE):
            continue
        if p_offset + p_filesz > len(data):
            raise ConfigError(f"{what}: ELF segment {i} extends past the end of the file")
        body = data[p_offset : p_offset + p_filesz]
        if p_type == PT_LOAD:
            if p_memsz < p_filesz:
                raise ConfigError(f"{what}: ELF segment {i} has memsz < filesz")
            if p_memsz:
                segments.append(Segment(p_paddr, body, p_memsz))
        else:
            notes.extend(_parse_notes(body, what))
    if not segments:
        raise ConfigError(f"{what}: ELF has no loadable segment")
    return ElfImage(entry, tuple(segments), tuple(notes), elf_class)


def _parse_notes(body: bytes, what: str) -> list[Note]:
    notes = []
    pos = 0
    while pos + 12 <= len(body):
        namesz, descsz, ntype = struct.unpack_from("<III", body, pos)
        pos += 12
        name_end = pos + namesz
        desc_start = pos + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if desc_end > len(body):
            raise ConfigError(f"{what}: malformed ELF note")
        notes.append(Note(body[pos:name_end].rstrip(b"\0"), ntype, body[desc_start:desc_end]))
        pos = desc_start + ((descsz + 3) & ~3)
    return notes

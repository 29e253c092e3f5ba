"""Guest symbols from the kernel ELF embedded in a recording (pyelftools).

Name -> address for expressions and ``break kprintf``; address -> (name,
offset) for ``<kprintf+4>`` in stop lines, disassembly and backtraces. Two
sorted tables answer the second question with bisect: *code* symbols
(functions, and labels in executable sections) for addresses that are
instructions, and *all* symbols for addresses that may be data (``x``).

The kernel blob comes from a recording, which is untrusted input: an image
without a symbol table, or one pyelftools cannot make sense of, gives an
empty table and a one-line reason, never an exception.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

# The ELF symbol types worth naming (STT_FILE, STT_SECTION, STT_TLS are not places).
_KINDS = {"STT_FUNC": "func", "STT_OBJECT": "object", "STT_NOTYPE": "label"}
_KIND_RANK = {"func": 0, "object": 0, "label": 1}
MAX_SYMBOLS = 1 << 20


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    address: int
    size: int
    kind: str  # "func" | "object" | "label"
    section: str
    global_: bool


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    start: int
    end: int
    executable: bool


class _AddressIndex:
    """Symbols sorted by address; one representative per address."""

    def __init__(self, symbols: list[Symbol], sections: list[Section]) -> None:
        best: dict[int, Symbol] = {}
        for sym in symbols:
            old = best.get(sym.address)
            if old is None or _preference(sym) < _preference(old):
                best[sym.address] = sym
        self._symbols = sorted(best.values(), key=lambda s: s.address)
        self._addresses = [s.address for s in self._symbols]
        self._sections = sections

    def find(self, address: int) -> Symbol | None:
        i = bisect_right(self._addresses, address) - 1
        if i < 0:
            return None
        sym = self._symbols[i]
        if sym.size > 0:
            return sym if address < sym.address + sym.size else None
        # A label without a size reaches up to the next symbol, within its section.
        section = _section_at(self._sections, sym.address)
        return sym if section is not None and address < section.end else None


def _preference(sym: Symbol) -> tuple[int, int, int, str]:
    """Which of several symbols at one address names it: a sized function or
    object over a label, global over local, ``kprintf`` over ``__start``."""
    return (_KIND_RANK[sym.kind], 0 if sym.global_ else 1, 1 if sym.name.startswith("_") else 0, sym.name)


def _section_at(sections: list[Section], address: int) -> Section | None:
    for section in sections:
        if section.start <= address < section.end:
            return section
    return None


class SymbolTable:
    """Symbols of one image; empty when the image has none."""

    def __init__(self, symbols: list[Symbol] | None = None, sections: list[Section] | None = None) -> None:
        self._sections = sections or []
        symbols = symbols or []
        self._by_name: dict[str, Symbol] = {}
        for sym in symbols:
            old = self._by_name.get(sym.name)
            # Two locals of one name (static functions in two files): the global
            # wins, then the first one, as gdb's minimal symbols do.
            if old is None or (sym.global_ and not old.global_):
                self._by_name[sym.name] = sym
        self._code = _AddressIndex(
            [s for s in symbols if s.kind == "func" or (s.kind == "label" and self._executable(s.address))],
            self._sections,
        )
        self._all = _AddressIndex(symbols, self._sections)
        self.problem = ""  # why there are no symbols, when there are none

    @classmethod
    def from_elf(cls, image: bytes) -> SymbolTable:
        try:
            symbols, sections = _read_elf(image)
        except (ELFError, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as e:
            # pyelftools reports malformed files with assorted exception types.
            table = cls()
            table.problem = f"cannot read symbols from the kernel image ({type(e).__name__}: {e})"
            return table
        table = cls(symbols, sections)
        if not symbols:
            table.problem = "the kernel image has no symbol table"
        return table

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def lookup(self, name: str) -> Symbol | None:
        return self._by_name.get(name)

    def address_of(self, name: str) -> int | None:
        sym = self._by_name.get(name)
        return sym.address if sym is not None else None

    def function_at(self, address: int) -> Symbol | None:
        """The function (or code label) that ``address`` lies in."""
        return self._code.find(address)

    def function_name(self, address: int) -> str | None:
        """The name of the function ``address`` lies in (``crash-at=``)."""
        sym = self.function_at(address)
        return sym.name if sym is not None else None

    def symbolize(self, address: int, *, code: bool = True) -> tuple[str, int] | None:
        """(name, offset) of ``address``: among code symbols, or any symbol."""
        sym = (self._code if code else self._all).find(address)
        return (sym.name, address - sym.address) if sym is not None else None

    def section_name(self, address: int) -> str | None:
        section = _section_at(self._sections, address)
        return section.name if section is not None else None

    def _executable(self, address: int) -> bool:
        section = _section_at(self._sections, address)
        return section is not None and section.executable


def _read_elf(image: bytes) -> tuple[list[Symbol], list[Section]]:
    elf = ELFFile(io.BytesIO(image))
    sections: list[Section] = []
    by_index: dict[int, Section] = {}
    for index, section in enumerate(elf.iter_sections()):
        flags = section["sh_flags"]
        if not flags & SH_FLAGS.SHF_ALLOC or section["sh_size"] == 0:
            continue
        start = section["sh_addr"]
        entry = Section(section.name, start, start + section["sh_size"], bool(flags & SH_FLAGS.SHF_EXECINSTR))
        sections.append(entry)
        by_index[index] = entry
    symbols: list[Symbol] = []
    for table in elf.iter_sections():
        if not isinstance(table, SymbolTableSection):
            continue
        for sym in table.iter_symbols():
            if len(symbols) >= MAX_SYMBOLS:
                break
            kind = _KINDS.get(sym["st_info"]["type"])
            shndx = sym["st_shndx"]
            if kind is None or not sym.name or not isinstance(shndx, int) or shndx not in by_index:
                continue  # undefined, absolute and common symbols are not places in the image
            symbols.append(
                Symbol(
                    sym.name,
                    sym["st_value"],
                    sym["st_size"],
                    kind,
                    by_index[shndx].name,
                    sym["st_info"]["bind"] != "STB_LOCAL",
                )
            )
    return symbols, sections

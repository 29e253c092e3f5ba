"""Function and object symbols of a kernel image (ELF ``.symtab``, via pyelftools).

Used to name addresses (``crash-at=order_total``) and to find them. An image
without symbols, or one that is not ELF (a bzImage), gives an empty table.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    address: int
    size: int


class SymbolTable:
    def __init__(self, symbols: list[Symbol]) -> None:
        self._by_address = sorted(symbols, key=lambda s: (s.address, s.name))
        self._starts = [s.address for s in self._by_address]
        self._by_name = {s.name: s for s in self._by_address}

    @classmethod
    def from_image(cls, image: bytes) -> SymbolTable:
        if image[:4] != b"\x7fELF":
            return cls([])
        try:
            elf = ELFFile(io.BytesIO(image))
            table = elf.get_section_by_name(".symtab")
            if table is None:
                return cls([])
            symbols = [
                Symbol(sym.name, sym["st_value"], sym["st_size"])
                for sym in table.iter_symbols()
                if sym.name
                and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")
                and sym["st_shndx"] != "SHN_UNDEF"
            ]
        except (ELFError, ValueError, KeyError, AttributeError):
            return cls([])
        return cls(symbols)

    def __bool__(self) -> bool:
        return bool(self._by_address)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def address(self, name: str) -> int | None:
        sym = self._by_name.get(name)
        return sym.address if sym is not None else None

    def lookup(self, address: int) -> tuple[str, int] | None:
        """(name, offset) of the symbol containing ``address``."""
        i = bisect.bisect_right(self._starts, address) - 1
        while i >= 0:
            sym = self._by_address[i]
            if sym.size == 0 or address < sym.address + sym.size:
                return sym.name, address - sym.address
            if address - sym.address > 1 << 20:
                return None
            i -= 1
        return None

    def name_of(self, address: int) -> str | None:
        """The name of the symbol containing ``address`` (no offset)."""
        hit = self.lookup(address)
        return hit[0] if hit is not None else None

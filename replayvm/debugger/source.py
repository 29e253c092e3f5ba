"""Source lines from DWARF line tables (pyelftools), for ``list`` and stop lines.

The bundled guests are built without debug information, so the usual answer
is "none": :class:`LineTable` is then empty and the commands say so. An
image built with ``-g`` gets address <-> file:line both ways. Source text
is looked up by the path DWARF names (relative paths against the directory
it was compiled in, the current directory, then the search directories),
so a kernel built elsewhere still lists when its sources are at hand.
"""

from __future__ import annotations

import io
import posixpath
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.elffile import ELFFile

MAX_ROWS = 1 << 22
MAX_SOURCE_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class LineInfo:
    address: int
    file: str
    line: int


class LineTable:
    """Address -> file:line, and back; empty without DWARF."""

    def __init__(self, rows: list[tuple[int, str | None, int]] | None = None) -> None:
        # Rows sorted by address; a row with file None ends a sequence (a gap).
        self._rows = sorted(rows or [], key=lambda r: (r[0], r[1] is not None))
        self._addresses = [r[0] for r in self._rows]
        self.problem = ""

    @classmethod
    def from_elf(cls, image: bytes) -> LineTable:
        try:
            rows = _read_lines(image)
        except (ELFError, DWARFError, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as e:
            table = cls()
            table.problem = f"cannot read line information ({type(e).__name__}: {e})"
            return table
        table = cls(rows)
        if not table:
            table.problem = "the kernel image has no line number information"
        return table

    def __bool__(self) -> bool:
        return any(r[1] is not None for r in self._rows)

    def find(self, address: int) -> LineInfo | None:
        i = bisect_right(self._addresses, address) - 1
        if i < 0:
            return None
        row_address, file, line = self._rows[i]
        return LineInfo(row_address, file, line) if file is not None else None

    def address_of(self, file: str, line: int) -> LineInfo | None:
        """The lowest address of the first line at or after ``line`` in ``file``
        (matched by path suffix, so ``demo.c`` finds ``./src/demo.c``)."""
        best: LineInfo | None = None
        for address, name, number in self._rows:
            if name is None or number < line or not _same_file(name, file):
                continue
            if best is None or (number, address) < (best.line, best.address):
                best = LineInfo(address, name, number)
        return best


def _same_file(path: str, wanted: str) -> bool:
    return path == wanted or path.endswith("/" + wanted.lstrip("./"))


def _read_lines(image: bytes) -> list[tuple[int, str | None, int]]:
    elf = ELFFile(io.BytesIO(image))
    if not elf.has_dwarf_info():
        return []
    dwarf = elf.get_dwarf_info()
    rows: list[tuple[int, str | None, int]] = []
    for cu in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(cu)
        if program is None:
            continue
        comp_dir = _text(cu.get_top_DIE().attributes.get("DW_AT_comp_dir"))
        version = program["version"]
        files = program["file_entry"]
        dirs = [_text(d) for d in program["include_directory"]]
        names: dict[int, str] = {}
        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            if len(rows) >= MAX_ROWS:
                return rows
            if state.end_sequence:
                rows.append((state.address, None, 0))
                continue
            if state.file not in names:
                names[state.file] = _file_name(files, dirs, comp_dir, state.file, version)
            rows.append((state.address, names[state.file], state.line))
    return rows


def _text(value: object) -> str:
    raw = getattr(value, "value", value)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return raw if isinstance(raw, str) else ""


def _file_name(files: list, dirs: list[str], comp_dir: str, index: int, version: int) -> str:  # type: ignore[type-arg]
    """DWARF 5 numbers files and directories from 0, earlier versions from 1
    (directory 0 then being the compilation directory)."""
    i = index if version >= 5 else index - 1
    if not 0 <= i < len(files):
        return f"<file {index}>"
    entry = files[i]
    name = _text(entry.name)
    d = entry.dir_index if version >= 5 else entry.dir_index - 1
    directory = dirs[d] if 0 <= d < len(dirs) else comp_dir
    if not posixpath.isabs(name):
        name = posixpath.join(directory, name) if directory else name
    if not posixpath.isabs(name) and comp_dir and directory != comp_dir:
        name = posixpath.join(comp_dir, name)
    return posixpath.normpath(name) if not name.startswith("./") else "./" + posixpath.normpath(name)


class SourceFiles:
    """Source text by DWARF path, found relative to a list of directories."""

    def __init__(self, search: list[Path] | None = None) -> None:
        self.search = search or []
        self._cache: dict[str, list[str] | None] = {}

    def lines(self, path: str) -> list[str] | None:
        if path not in self._cache:
            self._cache[path] = self._load(path)
        return self._cache[path]

    def _load(self, path: str) -> list[str] | None:
        candidates = [Path(path)] if posixpath.isabs(path) else [Path.cwd() / path, *(d / path for d in self.search)]
        for candidate in candidates:
            try:
                if candidate.is_file() and candidate.stat().st_size <= MAX_SOURCE_BYTES:
                    return candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
        return None

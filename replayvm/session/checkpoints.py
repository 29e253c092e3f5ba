"""Checkpoints: machine state plus guest RAM as page deltas (DESIGN.md §3, §5).

Unicorn's own memory snapshots are unusable (super-linear cost, crashes,
A/D bits not rewound), so RAM is kept the way the measurements suggested:
a *shadow* copy of RAM as it was at one checkpoint, and for each checkpoint
the pages that changed since the previous one, both ways (``redo``: the
page at this checkpoint; ``undo``: the page at the previous one). Restoring
checkpoint k from anywhere: put back the pages that differ from the shadow
(one memcmp pass over RAM), then walk the shadow and RAM together along the
deltas to k. Checkpoints are dense near the newest and thinned out further
back (rr's policy) whenever their deltas exceed the memory budget.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

from replayvm.engine.memory import PAGE_SIZE, GuestRam

BLOCK = 64 * 1024  # compare RAM in blocks first: bytes equality is a memcmp


@dataclass(slots=True)
class Checkpoint:
    icount: int
    state: dict[str, object]  # Machine.save_state() + session state; no RAM
    redo: dict[int, bytes] = field(default_factory=dict)  # page -> contents at this checkpoint
    undo: dict[int, bytes] = field(default_factory=dict)  # page -> contents at the previous one

    @property
    def size(self) -> int:
        return PAGE_SIZE * (len(self.redo) + len(self.undo)) + 8192


_libc = ctypes.CDLL(None)
_memcmp = _libc.memcmp
_memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_memcmp.restype = ctypes.c_int


def changed_pages(ram_address: int, shadow_address: int, size: int) -> list[int]:
    """Pages whose contents differ between two buffers (memcmp, no copies:
    comparing memoryview slices in Python is ~10x slower)."""
    pages = []
    for block in range(0, size, BLOCK):
        n = min(BLOCK, size - block)
        if _memcmp(ram_address + block, shadow_address + block, n):
            for page in range(block, block + n, PAGE_SIZE):
                if _memcmp(ram_address + page, shadow_address + page, PAGE_SIZE):
                    pages.append(page)
    return pages


class CheckpointStore:
    def __init__(self, ram: GuestRam, budget_bytes: int) -> None:
        self.ram = ram
        self.budget = budget_bytes
        self.shadow = bytearray(ram.view)
        self._shadow_address = ctypes.addressof((ctypes.c_char * len(self.shadow)).from_buffer(self.shadow))
        self.checkpoints: list[Checkpoint] = []
        self.at = -1  # index of the checkpoint the shadow holds

    def __len__(self) -> int:
        return len(self.checkpoints)

    @property
    def memory(self) -> int:
        return len(self.shadow) + sum(c.size for c in self.checkpoints)

    def last_icount(self) -> int:
        return self.checkpoints[-1].icount if self.checkpoints else -1

    def before(self, icount: int) -> int:
        """Index of the newest checkpoint at or before ``icount``."""
        lo, hi = 0, len(self.checkpoints) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.checkpoints[mid].icount <= icount:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def append(self, icount: int, state: dict[str, object]) -> None:
        """Checkpoint the current machine, which must be past the newest checkpoint."""
        assert icount > self.last_icount()
        self._move_shadow(len(self.checkpoints) - 1)
        view = self.ram.view
        cp = Checkpoint(icount, state)
        for page in self._changed():
            cp.undo[page] = bytes(self.shadow[page : page + PAGE_SIZE])
            cp.redo[page] = bytes(view[page : page + PAGE_SIZE])
            self.shadow[page : page + PAGE_SIZE] = view[page : page + PAGE_SIZE]
        self.checkpoints.append(cp)
        self.at = len(self.checkpoints) - 1
        self._thin()

    def restore(self, index: int, *, ram_at: int | None = None) -> Checkpoint:
        """Put RAM back to checkpoint ``index``; return it (its state is the caller's).

        ``ram_at``: the caller knows RAM holds checkpoint ``ram_at`` exactly
        (it replayed up to that checkpoint's icount), so no pass over RAM is
        needed: the shadow is brought there, then both move along the
        deltas. Otherwise the pages that differ from the shadow are found by
        comparing all of RAM."""
        if ram_at is not None:
            self._move_shadow(ram_at)
        else:
            view = self.ram.view
            for page in self._changed():
                view[page : page + PAGE_SIZE] = self.shadow[page : page + PAGE_SIZE]
        self._move_shadow(index, also_ram=True)
        return self.checkpoints[index]

    def _changed(self) -> list[int]:
        return changed_pages(self.ram.address, self._shadow_address, len(self.shadow))

    def _move_shadow(self, index: int, also_ram: bool = False) -> None:
        targets = [self.shadow, self.ram.view] if also_ram else [self.shadow]
        while self.at > index:
            for page, data in self.checkpoints[self.at].undo.items():
                for t in targets:
                    t[page : page + PAGE_SIZE] = data
            self.at -= 1
        while self.at < index:
            self.at += 1
            for page, data in self.checkpoints[self.at].redo.items():
                for t in targets:
                    t[page : page + PAGE_SIZE] = data

    def _thin(self) -> None:
        """Over budget: drop every other checkpoint in the older half, merging
        its deltas into the next one (the first and newest always stay)."""
        while self.memory > self.budget and len(self.checkpoints) > 3:
            older = range(1, max(2, len(self.checkpoints) // 2), 2)
            removed = 0
            for i in reversed(list(older)):
                if i == self.at or i >= len(self.checkpoints) - 1:
                    continue
                removed += 1
                gone, nxt = self.checkpoints[i], self.checkpoints[i + 1]
                merged_redo = dict(gone.redo)
                merged_redo.update(nxt.redo)
                merged_undo = dict(nxt.undo)
                merged_undo.update(gone.undo)
                nxt.redo, nxt.undo = merged_redo, merged_undo
                del self.checkpoints[i]
                if self.at > i:
                    self.at -= 1
            if not removed:
                break

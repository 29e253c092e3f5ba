"""The instruction counter: the one seam where the counting strategy lives.

Virtual time in ReplayVM is the instruction count (DESIGN.md §1), so the
count must be exact at every exit. This strategy uses Unicorn's ``count=N``
mode: a slice stops after exactly N instructions, and Unicorn's internal
``emu_counter`` (found by :mod:`replayvm.engine.uc_abi`) tells how many ran
when a slice ends early. Measured on Unicorn 2.1.4:

* inside an IN/OUT/CPUID/exception hook the counter counts the instructions
  started in this slice, including the current one;
* when a hook calls ``emu_stop`` the slice ends right after the current
  instruction (the counter then reads one more: the next instruction's
  count check ran), so the count seen *in the hook* is the exact total;
* when the budget runs out the counter reads N + 1;
* after HLT the counter includes the HLT.

The native block-counting strategy (issue 9, :mod:`replayvm.engine.native`)
keeps the same contract, :class:`InstructionCounter`; :func:`make_counter`
picks one by name.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Protocol

from unicorn import Uc

from replayvm.engine.uc_abi import counter_pointer, layout

UNTIL_NEVER = 0xFFFF_FFFF_FFFF_FFFF  # no instruction lives at a non-canonical address

ENGINES = ("native", "count")
DEFAULT_ENGINE = "native"  # what a Vcpu uses unless told; `--engine` sets it for the process


class InstructionCounter(Protocol):
    """What the vCPU needs of a counting strategy. Every strategy gives the
    same numbers, so a recording made with one replays with another."""

    name: str
    stop_count: int | None  # the in-hook count when a hook stopped the slice

    def in_slice(self, mmio: bool = False) -> int:
        """Instructions started in the running slice, including the current one
        (``mmio``: the caller is an MMIO callback, where Unicorn leaves RIP stale)."""
        ...

    def mark_stop(self, mmio: bool = False) -> None:
        """Called by a hook that calls emu_stop: the slice ends after this instruction."""
        ...

    def run(self, begin: int, budget: int) -> tuple[int, bool]:
        """Run up to ``budget`` instructions from ``begin``: (executed, ended_early)."""
        ...


_notified: set[str] = set()


def make_counter(uc: Uc, engine: str = "native", *, notice: bool = True) -> InstructionCounter:
    """The counter for ``engine`` ("native" or "count") on a fresh ``uc``.

    Create it before adding any hook to ``uc``. "native" falls back to count
    mode, with a one-line notice on stderr (once per process), when the
    native counter is not built or does not match this Unicorn.
    """
    if engine == "count":
        return CountModeCounter(uc)
    if engine != "native":
        raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    from replayvm.engine.native import NativeCounter, NativeUnavailable

    try:
        return NativeCounter(uc)
    except NativeUnavailable as e:
        if notice and str(e) not in _notified:
            _notified.add(str(e))
            print(f"replayvm: {e}; using the count engine", file=sys.stderr)
        return CountModeCounter(uc)


class CountModeCounter:
    name = "count"

    def __init__(self, uc: Uc) -> None:
        self.uc = uc
        self._ptr: ctypes._Pointer = counter_pointer(uc)
        self._word = layout().counter_word
        self.stop_count: int | None = None  # the in-hook count when a hook stopped the slice

    def in_slice(self, mmio: bool = False) -> int:
        """Instructions started in the running slice, including the current one
        (exact in every hook, MMIO callbacks too)."""
        return self._ptr[self._word]

    def mark_stop(self, mmio: bool = False) -> None:
        """Called by a hook that calls emu_stop: the slice ends after this instruction."""
        if self.stop_count is None:
            self.stop_count = self._ptr[self._word]

    def run(self, begin: int, budget: int) -> tuple[int, bool]:
        """Run up to ``budget`` instructions from ``begin``.

        Returns (executed, ended_early). ``ended_early`` without a hook stop
        means the guest halted.
        """
        self.stop_count = None
        self.uc.emu_start(begin, UNTIL_NEVER, count=budget)
        if self.stop_count is not None:
            return self.stop_count, True
        counter = self._ptr[self._word]
        if counter > budget:
            return budget, False
        return counter, True

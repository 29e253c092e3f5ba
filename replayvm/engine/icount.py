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

A native block-counting strategy (issue 9) replaces this module alone.
"""

from __future__ import annotations

import ctypes

from unicorn import Uc

from replayvm.engine.uc_abi import counter_pointer, layout

UNTIL_NEVER = 0xFFFF_FFFF_FFFF_FFFF  # no instruction lives at a non-canonical address


class CountModeCounter:
    name = "count"

    def __init__(self, uc: Uc) -> None:
        self.uc = uc
        self._ptr: ctypes._Pointer = counter_pointer(uc)
        self._word = layout().counter_word
        self.stop_count: int | None = None  # the in-hook count when a hook stopped the slice

    def in_slice(self) -> int:
        """Instructions started in the running slice, including the current one."""
        return self._ptr[self._word]

    def mark_stop(self) -> None:
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

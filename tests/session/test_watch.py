"""The pieces of watch.py that need no guest."""

from __future__ import annotations

from replayvm.session.watch import _overlay


def test_a_pending_write_is_seen_by_the_walk_it_overlaps() -> None:
    entry = 0x1122334455667788
    assert _overlay(entry, 0x1000, 8, 0x1000, 8, 0x0AAA_0007) == 0x0AAA_0007  # the whole entry
    assert _overlay(entry, 0x1000, 8, 0x1004, 4, 0xDEADBEEF) == 0xDEADBEEF55667788  # its high half
    assert _overlay(entry, 0x1000, 8, 0x0FFE, 4, 0xAABBCCDD) == 0x112233445566AABB  # straddling its start
    assert _overlay(entry, 0x1000, 8, 0x1008, 8, 0) == entry  # the next entry
    assert _overlay(0x12345678, 0x2000, 4, 0x1FFC, 4, 0) == 0x12345678  # the one before

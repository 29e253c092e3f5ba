"""The checkpoint store on its own: RAM deltas both ways, thinning, the budget."""

from __future__ import annotations

import random

from replayvm.engine.memory import PAGE_SIZE, GuestRam
from replayvm.session.checkpoints import CheckpointStore


def scribble(ram: GuestRam, rng: random.Random, pages: int = 8) -> None:
    """Write into a few of 16 hot pages, as a guest's working set does."""
    for _ in range(pages):
        page = rng.randrange(16) * 17 * PAGE_SIZE
        ram.write(page + rng.randrange(PAGE_SIZE - 8), rng.randbytes(8))


def build(budget: int = 1 << 30) -> tuple[GuestRam, CheckpointStore, list[bytes]]:
    """A store of 12 checkpoints of a 1 MiB RAM, and the RAM each one holds."""
    rng = random.Random(7)
    ram = GuestRam(1 << 20)
    store = CheckpointStore(ram, budget)
    images = []
    for i in range(12):
        if i:
            scribble(ram, rng)
        store.append(i * 100, {"i": i})
        images.append(bytes(ram.view))
    return ram, store, images


def test_restore_puts_back_the_ram_of_any_checkpoint_from_anywhere() -> None:
    ram, store, images = build()
    rng = random.Random(3)
    for index in (5, 11, 0, 7, 7, 2):
        scribble(ram, rng)  # the guest ran on from wherever it was
        cp = store.restore(index)
        assert bytes(ram.view) == images[index] and cp.state == {"i": index}


def test_restore_from_a_known_checkpoint_needs_no_comparison_and_agrees() -> None:
    ram, store, images = build()
    for at, index in ((11, 4), (4, 3), (3, 9), (9, 0), (0, 11)):
        store.restore(at)
        cp = store.restore(index, ram_at=at)  # RAM is known to be checkpoint `at`
        assert bytes(ram.view) == images[index] and cp.state == {"i": index}


def test_thinning_keeps_the_first_and_newest_within_the_budget() -> None:
    ram, store, images = build(budget=(1 << 20) + 100 * PAGE_SIZE)
    assert store.memory <= store.budget
    kept = [cp.state["i"] for cp in store.checkpoints]
    assert kept[0] == 0 and kept[-1] == 11 and len(kept) < 12
    for index, cp in enumerate(store.checkpoints):
        store.restore(index)
        assert bytes(ram.view) == images[cp.state["i"]]  # type: ignore[index]

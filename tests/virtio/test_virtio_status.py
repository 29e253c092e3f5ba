"""The device status state machine (virtio 1.2 §2.1, §3.1.1), row by row."""

from __future__ import annotations

import pytest

from replayvm.virtio.status import (
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET,
    StatusVerdict,
    status_transition,
)

A, D, FO, OK = (
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_DRIVER_OK,
)
FAILED, NR = VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_NEEDS_RESET

RESET, ACCEPT, NEGOTIATE, IGNORE = (
    StatusVerdict.RESET,
    StatusVerdict.ACCEPT,
    StatusVerdict.NEGOTIATE,
    StatusVerdict.IGNORE,
)

# (current status, value written, verdict, driver bits afterwards)
STATUS_TABLE = [
    # the initialisation sequence of §3.1.1, one bit at a time
    (0, A, ACCEPT, A),
    (A, A | D, ACCEPT, A | D),
    (A | D, A | D | FO, NEGOTIATE, A | D | FO),
    (A | D | FO, A | D | FO | OK, ACCEPT, A | D | FO | OK),
    # several steps in one write are fine when each bit's prerequisites are there
    (0, A | D, ACCEPT, A | D),
    (A | D, A | D | FO | OK, NEGOTIATE, A | D | FO | OK),
    # writing 0 resets from anywhere
    (0, 0, RESET, 0),
    (A | D | FO | OK, 0, RESET, 0),
    (A | D | FO | OK | NR, 0, RESET, 0),
    (A | FAILED, 0, RESET, 0),
    # rewriting the same value is a no-op (MMIO accesses may be replayed)
    (A, A, ACCEPT, A),
    (A | D | FO | OK, A | D | FO | OK, ACCEPT, A | D | FO | OK),
    # skipping a step is refused
    (0, D, IGNORE, 0),
    (A, A | FO, IGNORE, A),
    (A | D, A | D | OK, IGNORE, A | D),
    (0, OK, IGNORE, 0),
    # the driver never clears a bit except by reset (§2.1.1)
    (A | D, A, IGNORE, A | D),
    (A | D | FO | OK, A | D | OK, IGNORE, A | D | FO | OK),
    # FAILED can be set at any time; nothing but a reset follows it
    (0, FAILED, ACCEPT, FAILED),
    (A | D, A | D | FAILED, ACCEPT, A | D | FAILED),
    (A | D | FAILED, A | D | FO | FAILED, IGNORE, A | D | FAILED),
    # NEEDS_RESET is the device's: echoing it back is harmless, it is not a driver bit
    (A | D | FO | OK | NR, A | D | FO | OK | NR, ACCEPT, A | D | FO | OK),
    (A | D, A | D | NR, ACCEPT, A | D),
    # reserved bits
    (A, A | 0x10, IGNORE, A),
    (A, A | 0x20, IGNORE, A),
]


@pytest.mark.parametrize(("current", "written", "verdict", "after"), STATUS_TABLE)
def test_status_transition_row(current: int, written: int, verdict: StatusVerdict, after: int) -> None:
    change = status_transition(current, written)
    assert change.verdict is verdict
    assert change.status == after
    assert bool(change.reason) == (verdict is IGNORE)

"""Whatever a driver writes, no exception reaches the engine (STYLE.md: devices).

Random register traffic and random ring contents against every device type:
the transport may refuse, count, warn and enter NEEDS_RESET, but a read or
write always returns normally.
"""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import replayvm.virtio
from replayvm.virtio.blk import VirtioBlk
from replayvm.virtio.console import VirtioConsole
from replayvm.virtio.device import VirtioBackend
from replayvm.virtio.mmio import VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_STATUS
from replayvm.virtio.net import VirtioNet
from replayvm.virtio.responder import Responder
from replayvm.virtio.rng import VirtioRng
from replayvm.virtio.status import VIRTIO_CONFIG_S_NEEDS_RESET
from tests.virtio.driver import RING_BASE, RING_STRIDE, Driver

BACKENDS = {
    "blk": lambda: VirtioBlk(bytes(8192)),
    "net": lambda: VirtioNet(Responder()),
    "console": lambda: VirtioConsole(lambda data: None),
    "rng": lambda: VirtioRng(lambda n: bytes(n)),
}

register_offsets = st.one_of(st.integers(0, 0xFF).map(lambda x: x * 4), st.integers(0, 0x1FF))
accesses = st.lists(
    st.tuples(st.booleans(), register_offsets, st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFFFFFF)),
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(kind=st.sampled_from(sorted(BACKENDS)), ops=accesses)
def test_random_register_traffic_never_raises(kind: str, ops: list[tuple[bool, int, int, int]]) -> None:
    drv = Driver(BACKENDS[kind]())
    for is_write, offset, size, value in ops:
        if is_write:
            drv.transport.write(offset, size, value & ((1 << (8 * size)) - 1))
        else:
            assert 0 <= drv.transport.read(offset, size) < 1 << (8 * size)


@settings(max_examples=80, deadline=None)
@given(kind=st.sampled_from(sorted(BACKENDS)), garbage=st.binary(min_size=1, max_size=4096), seed=st.integers(0, 64))
def test_garbage_rings_never_raise(kind: str, garbage: bytes, seed: int) -> None:
    backend: VirtioBackend = BACKENDS[kind]()
    drv = Driver(backend).start(queue_size=16)
    for q in range(len(drv.queues)):
        base = RING_BASE + RING_STRIDE * q
        drv.mem.write(base + seed, garbage[: RING_STRIDE - seed])
    for q in range(len(drv.queues)):
        drv.write(VIRTIO_MMIO_QUEUE_NOTIFY, q)
    if isinstance(backend, VirtioNet):
        backend.receive(b"\x00" * 60)
    if isinstance(backend, VirtioConsole):
        backend.receive(b"input")
    t = drv.transport
    if t.stats.errors:
        assert drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET or t.warnings
    assert len(t.warnings) <= 32


FORBIDDEN = {"time", "random", "os", "socket", "threading", "secrets", "select", "subprocess"}
FORBIDDEN_PACKAGES = ("replayvm.log", "replayvm.session", "replayvm.engine.vcpu", "replayvm.host", "replayvm.machine")


def test_devices_import_nothing_nondeterministic() -> None:
    """DESIGN.md §1: devices see offsets, guest memory, an IRQ line and values handed in."""
    for path in Path(replayvm.virtio.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
                assert not name.startswith(FORBIDDEN_PACKAGES), f"{path.name} imports {name}"

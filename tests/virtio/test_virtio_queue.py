"""Split virtqueue, device side (virtio 1.2 §2.7), against a Python driver."""

from __future__ import annotations

import struct

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from replayvm.engine.memory import GuestRam
from replayvm.virtio.queue import (
    MAX_CHAIN_BYTES,
    VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
    SplitVirtqueue,
    vring_need_event,
)
from tests.virtio.driver import RAM_SIZE, RING_BASE, DriverQueue

SIZE = 8


class Harness:
    def __init__(self, size: int = SIZE, *, indirect: bool = True, event_idx: bool = False) -> None:
        self.mem = GuestRam(RAM_SIZE)
        self.errors: list[str] = []
        self.q = SplitVirtqueue(self.mem, 16, on_error=self.errors.append)
        self.dq = DriverQueue(self.mem, RING_BASE, size)
        self.dq.program(self.q)
        self.q.indirect = indirect
        self.q.event_idx = event_idx


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_empty_queue_pops_nothing(h: Harness) -> None:
    assert h.q.pop() is None
    assert h.q.pending() == 0


def test_chain_has_readable_then_writable_buffers(h: Harness) -> None:
    head = h.dq.add([b"hello", b" world"], [7, 9])
    chain = h.q.pop()
    assert chain is not None and chain.head == head
    assert chain.read() == b"hello world"
    assert [b.length for b in chain.writable] == [7, 9]
    assert chain.write(b"0123456789abcdef") == 16
    assert h.dq.written(head, 16) == b"0123456789abcdef"


def test_write_past_the_writable_part_is_truncated(h: Harness) -> None:
    h.dq.add([], [4])
    chain = h.q.pop()
    assert chain is not None
    assert chain.write(b"123456") == 4
    assert chain.write(b"z", offset=3) == 1


def test_read_limit(h: Harness) -> None:
    h.dq.add([b"abc", b"def"], [])
    chain = h.q.pop()
    assert chain is not None and chain.read(limit=4) == b"abcd"


def test_indirect_chain_is_followed(h: Harness) -> None:
    head = h.dq.add([b"in", b"direct"], [3], indirect=True)
    chain = h.q.pop()
    assert chain is not None and chain.head == head
    assert chain.read() == b"indirect"
    assert chain.writable_length == 3


def test_push_fills_the_used_ring(h: Harness) -> None:
    head = h.dq.add([b"x"], [2])
    chain = h.q.pop()
    assert chain is not None
    h.q.push(chain.head, 2)
    assert h.dq.used_idx() == 1
    assert h.dq.take_used() == [(head, 2)]


def test_ring_positions_wrap_modulo_the_queue_size(h: Harness) -> None:
    for i in range(3 * SIZE):
        head = h.dq.add([bytes([i])], [])
        chain = h.q.pop()
        assert chain is not None and chain.read() == bytes([i])
        h.q.push(chain.head, 0)
        assert h.dq.take_used() == [(head, 0)]


def test_indexes_wrap_at_16_bits() -> None:
    h = Harness()
    start = 0xFFFE
    for idx_owner in (h.dq,):
        idx_owner.avail_idx = start
        idx_owner.last_used = start
    h.mem.write_int(h.dq.avail + 2, 2, start)
    h.mem.write_int(h.dq.used + 2, 2, start)
    h.q.last_avail_idx = h.q.used_idx = start
    for _ in range(4):
        h.dq.add([b"w"], [])
        chain = h.q.pop()
        assert chain is not None
        h.q.push(chain.head, 0)
        assert len(h.dq.take_used()) == 1
    assert h.q.last_avail_idx == 2 and h.dq.used_idx() == 2
    assert not h.errors


def test_notification_without_event_idx_honours_no_interrupt(h: Harness) -> None:
    h.dq.add([b"a"], [])
    h.q.push(h.q.pop().head, 0)  # type: ignore[union-attr]
    assert h.q.needs_notification()
    assert not h.q.needs_notification()  # nothing new since
    h.dq.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT)
    h.dq.add([b"b"], [])
    h.q.push(h.q.pop().head, 0)  # type: ignore[union-attr]
    assert not h.q.needs_notification()


def test_event_idx_notifies_only_when_used_event_is_crossed() -> None:
    h = Harness(event_idx=True)
    h.dq.set_used_event(2)  # "interrupt me when used idx passes 2"
    results = []
    for _ in range(4):
        h.dq.add([b"a"], [])
        h.q.push(h.q.pop().head, 0)  # type: ignore[union-attr]
        results.append(h.q.needs_notification())
    # the first is always signalled (no previous signal), then only the push making used idx 3
    assert results == [True, False, True, False]


def test_event_idx_publishes_avail_event_after_each_pop() -> None:
    h = Harness(event_idx=True)
    h.dq.add([b"a"], [])
    h.dq.add([b"b"], [])
    h.q.pop()
    assert h.dq.avail_event() == 1
    h.q.pop()
    assert h.dq.avail_event() == 2


@pytest.mark.parametrize(
    ("event", "new", "old", "expected"),
    [(0, 1, 0, True), (1, 1, 0, False), (5, 7, 3, True), (7, 7, 3, False), (0xFFFF, 0, 0xFFFE, True)],
)
def test_vring_need_event(event: int, new: int, old: int, expected: bool) -> None:
    assert vring_need_event(event, new, old) is expected


def test_unpop_gives_the_chain_back(h: Harness) -> None:
    head = h.dq.add([b"a"], [])
    h.q.pop()
    h.q.unpop()
    chain = h.q.pop()
    assert chain is not None and chain.head == head


# -- hostile drivers: the queue breaks, reports once, and never raises ------------------------


def publish_raw(h: Harness, head: int) -> None:
    h.dq.publish(head)


def assert_broken(h: Harness, fragment: str) -> None:
    assert h.q.pop() is None
    assert h.q.broken
    assert len(h.errors) == 1, h.errors
    assert fragment in h.errors[0]
    assert h.q.pop() is None and len(h.errors) == 1  # stays broken, reported once


def test_descriptor_loop_is_cut_by_the_hop_limit(h: Harness) -> None:
    h.dq.write_desc(h.dq.desc, 0, 0x60000, 4, VIRTQ_DESC_F_NEXT, 1)
    h.dq.write_desc(h.dq.desc, 1, 0x60000, 4, VIRTQ_DESC_F_NEXT, 0)
    publish_raw(h, 0)
    assert_broken(h, "a loop")


def test_next_index_outside_the_table(h: Harness) -> None:
    h.dq.write_desc(h.dq.desc, 0, 0x60000, 4, VIRTQ_DESC_F_NEXT, SIZE)
    publish_raw(h, 0)
    assert_broken(h, "outside a table")


def test_head_index_outside_the_table(h: Harness) -> None:
    publish_raw(h, 200)
    assert_broken(h, "descriptor index 200")


def test_buffer_outside_ram(h: Harness) -> None:
    h.dq.write_desc(h.dq.desc, 0, RAM_SIZE - 2, 4, 0)
    publish_raw(h, 0)
    assert_broken(h, "outside guest RAM")


def test_buffer_at_an_mmio_address(h: Harness) -> None:
    h.dq.write_desc(h.dq.desc, 0, 0xD000_0000, 4, VIRTQ_DESC_F_WRITE)
    publish_raw(h, 0)
    assert_broken(h, "outside guest RAM")


def test_chain_bytes_are_capped() -> None:
    mem = GuestRam(64 << 20)
    errors: list[str] = []
    q = SplitVirtqueue(mem, 16, on_error=errors.append)
    dq = DriverQueue(mem, RING_BASE, SIZE)
    dq.program(q)
    length = MAX_CHAIN_BYTES // 2 + 1
    for i in range(3):
        dq.write_desc(dq.desc, i, 0x100000, length, VIRTQ_DESC_F_NEXT, i + 1)
    dq.write_desc(dq.desc, 3, 0x100000, 1, 0)
    dq.publish(0)
    assert q.pop() is None and "more than" in errors[0]


def test_readable_after_writable(h: Harness) -> None:
    h.dq.write_desc(h.dq.desc, 0, 0x60000, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1)
    h.dq.write_desc(h.dq.desc, 1, 0x60000, 4, 0)
    publish_raw(h, 0)
    assert_broken(h, "readable buffer after a writable one")


def test_indirect_without_the_feature() -> None:
    h = Harness(indirect=False)
    h.dq.add([b"a"], [], indirect=True)
    assert_broken(h, "VIRTIO_F_INDIRECT_DESC")


def test_nested_indirect_table(h: Harness) -> None:
    table = h.dq.alloc(16)
    h.dq.write_desc(table, 0, table, 16, VIRTQ_DESC_F_INDIRECT)
    h.dq.write_desc(h.dq.desc, 0, table, 16, VIRTQ_DESC_F_INDIRECT)
    publish_raw(h, 0)
    assert_broken(h, "inside an indirect table")


def test_indirect_with_next(h: Harness) -> None:
    table = h.dq.alloc(16)
    h.dq.write_desc(table, 0, 0x60000, 1, 0)
    h.dq.write_desc(h.dq.desc, 0, table, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1)
    publish_raw(h, 0)
    assert_broken(h, "F_NEXT")


@pytest.mark.parametrize("length", [0, 15, 17, 16 * 2048])
def test_indirect_table_of_a_bad_length(h: Harness, length: int) -> None:
    h.dq.write_desc(h.dq.desc, 0, 0x60000, length, VIRTQ_DESC_F_INDIRECT)
    publish_raw(h, 0)
    assert_broken(h, "indirect table of")


def test_indirect_table_loop(h: Harness) -> None:
    table = h.dq.alloc(32)
    h.dq.write_desc(table, 0, 0x60000, 1, VIRTQ_DESC_F_NEXT, 1)
    h.dq.write_desc(table, 1, 0x60000, 1, VIRTQ_DESC_F_NEXT, 0)
    h.dq.write_desc(h.dq.desc, 0, table, 32, VIRTQ_DESC_F_INDIRECT)
    publish_raw(h, 0)
    assert_broken(h, "a loop")


def test_available_index_jumping_past_the_queue_size(h: Harness) -> None:
    h.dq.set_avail_idx(SIZE + 1)
    assert h.q.pending() == 0
    assert_broken(h, "ahead of the device")


def test_available_index_exactly_a_queue_ahead_is_fine(h: Harness) -> None:
    for i in range(SIZE):
        h.dq.write_desc(h.dq.desc, i, 0x60000, 1, 0)
        h.dq.publish(i)
    assert h.q.pending() == SIZE and not h.errors


def test_broken_queue_ignores_push(h: Harness) -> None:
    h.dq.set_avail_idx(0x8000)
    h.q.pop()
    h.q.push(0, 1)
    assert h.dq.used_idx() == 0


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("size", 3, "power of 2"),
        ("size", 32, "power of 2"),
        ("desc_addr", 0x10008, "aligned"),
        ("device_addr", 0x10002, "aligned"),
        ("driver_addr", RAM_SIZE - 2, "outside guest RAM"),
    ],
)
def test_layout_problems(h: Harness, field: str, value: int, fragment: str) -> None:
    setattr(h.q, field, value)
    problem = h.q.layout_problem()
    assert problem is not None and fragment in problem


def test_state_round_trip(h: Harness) -> None:
    h.dq.add([b"a"], [])
    h.q.pop()
    other = SplitVirtqueue(h.mem, 16)
    other.load_state(h.q.save_state())
    assert other.save_state() == h.q.save_state()


# -- stateful property test: random chains and driver operations --------------------------------

buffers = st.lists(st.binary(min_size=1, max_size=24), max_size=3)
writable_sizes = st.lists(st.integers(1, 24), max_size=3)


class VirtqueueMachine(RuleBasedStateMachine):
    """A driver adds random chains (direct or indirect), publishes them, sometimes
    misbehaves; the device pops and pushes. The device must hand out exactly what
    was published, in order, and a bad driver breaks the queue without raising."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(SIZE, indirect=True, event_idx=True)
        self.published: list[tuple[int, bytes, int]] = []  # (head, readable bytes, writable length)
        self.in_device: list[tuple[int, int]] = []  # popped, not pushed: (head, writable length)
        self.pushed: list[tuple[int, int]] = []
        self.hostile = False

    @precondition(lambda self: not self.hostile)
    @rule(readable=buffers, writable=writable_sizes, indirect=st.booleans())
    def driver_adds_chain(self, readable: list[bytes], writable: list[int], indirect: bool) -> None:
        if not readable and not writable:
            return
        need = 1 if indirect else len(readable) + len(writable)
        if len(self.h.dq.free) < need:
            return
        head = self.h.dq.add(readable, writable, indirect=indirect)
        self.published.append((head, b"".join(readable), sum(writable)))

    @rule()
    def device_pops(self) -> None:
        chain = self.h.q.pop()
        if self.hostile:
            assert chain is None
            return
        if not self.published:
            assert chain is None
            return
        assert chain is not None
        head, data, room = self.published.pop(0)
        assert (chain.head, chain.read(), chain.writable_length) == (head, data, room)
        assert self.h.dq.avail_event() == self.h.q.last_avail_idx
        self.in_device.append((chain.head, room))

    @rule(data=st.data())
    def device_pushes(self, data: st.DataObject) -> None:
        if not self.in_device:
            return
        head, room = self.in_device.pop(0)
        length = data.draw(st.integers(0, room))
        self.h.q.push(head, length)
        self.pushed.append((head, length))

    @rule(used_event=st.integers(0, 0xFFFF))
    def driver_moves_used_event(self, used_event: int) -> None:
        self.h.dq.set_used_event(used_event)
        self.h.q.needs_notification()

    @rule()
    def driver_reaps(self) -> None:
        used = self.h.dq.take_used()
        if not self.hostile:
            assert used == self.pushed[: len(used)]
            del self.pushed[: len(used)]

    @rule(jump=st.integers(SIZE + 1, 0xFFFF))
    def hostile_avail_jump(self, jump: int) -> None:
        self.h.dq.set_avail_idx((self.h.q.last_avail_idx + jump) & 0xFFFF)
        self.hostile = True
        assert self.h.q.pop() is None
        assert self.h.q.broken

    @precondition(lambda self: not self.hostile and len(self.h.dq.free) >= 2)
    @rule()
    def hostile_loop(self) -> None:
        a, b = self.h.dq.free[0], self.h.dq.free[1]
        self.h.dq.write_desc(self.h.dq.desc, a, 0x60000, 1, VIRTQ_DESC_F_NEXT, b)
        self.h.dq.write_desc(self.h.dq.desc, b, 0x60000, 1, VIRTQ_DESC_F_NEXT, a)
        self.h.dq.publish(a)
        self.hostile = True
        while self.h.q.pop() is not None:
            pass
        assert self.h.q.broken

    @invariant()
    def errors_only_from_hostile_drivers(self) -> None:
        assert len(self.h.errors) == (1 if self.h.q.broken else 0)
        if not self.hostile:
            assert not self.h.q.broken

    @invariant()
    def device_never_runs_ahead_of_the_driver(self) -> None:
        if not self.hostile:
            assert (self.h.dq.avail_idx - self.h.q.last_avail_idx) & 0xFFFF == len(self.published)

    def teardown(self) -> None:
        self.h.mem.close()


TestVirtqueueMachine = VirtqueueMachine.TestCase
TestVirtqueueMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_descriptor_layout_matches_the_spec() -> None:
    """§2.7.5: le64 addr, le32 len, le16 flags, le16 next."""
    h = Harness()
    h.dq.add([b"abcd"], [])
    raw = h.mem.read(h.dq.desc, 16)
    addr, length, flags, _ = struct.unpack("<QIHH", raw)
    assert (length, flags) == (4, 0) and h.mem.read(addr, 4) == b"abcd"

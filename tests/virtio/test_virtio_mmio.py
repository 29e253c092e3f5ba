"""The virtio-mmio v2 transport, register by register (virtio 1.2 §4.2.2)."""

from __future__ import annotations

import pytest

from replayvm.virtio.device import VirtioBackend
from replayvm.virtio.features import VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1
from replayvm.virtio.mmio import (
    VIRTIO_MMIO_CONFIG,
    VIRTIO_MMIO_CONFIG_GENERATION,
    VIRTIO_MMIO_DEVICE_FEATURES,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL,
    VIRTIO_MMIO_DEVICE_ID,
    VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL,
    VIRTIO_MMIO_INT_CONFIG,
    VIRTIO_MMIO_INT_VRING,
    VIRTIO_MMIO_INTERRUPT_ACK,
    VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_MAGIC,
    VIRTIO_MMIO_MAGIC_VALUE,
    VIRTIO_MMIO_QUEUE_DESC_HIGH,
    VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_NUM,
    VIRTIO_MMIO_QUEUE_NUM_MAX,
    VIRTIO_MMIO_QUEUE_READY,
    VIRTIO_MMIO_QUEUE_SEL,
    VIRTIO_MMIO_SHM_LEN_LOW,
    VIRTIO_MMIO_STATUS,
    VIRTIO_MMIO_VENDOR,
    VIRTIO_MMIO_VENDOR_ID,
    VIRTIO_MMIO_VERSION,
)
from replayvm.virtio.queue import DescriptorChain
from replayvm.virtio.status import (
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET,
)
from tests.virtio.driver import Driver

V1 = 1 << VIRTIO_F_VERSION_1
AD = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER
ADF = AD | VIRTIO_CONFIG_S_FEATURES_OK
RUNNING = ADF | VIRTIO_CONFIG_S_DRIVER_OK


class Echo(VirtioBackend):
    """Test device: queue 0 copies each chain's readable bytes into its writable part."""

    device_id = 42
    name = "echo"
    queue_names = ("q0", "q1")
    queue_num_max = 64

    def __init__(self) -> None:
        super().__init__()
        self.config = bytearray(b"\x11\x22\x33\x44\x55\x66\x77\x88")
        self.resets = 0
        self.calls = 0

    def device_features(self) -> int:
        return 1 << 3

    def config_space(self) -> bytes:
        return bytes(self.config)

    def write_config(self, offset: int, data: bytes) -> None:
        self.config[offset : offset + len(data)] = data
        self.link.config_changed()

    def queue_notify(self, index: int) -> None:
        self.calls += 1
        self.drain(index, self._echo)

    def _echo(self, chain: DescriptorChain) -> int:
        return chain.write(chain.read())

    def reset(self) -> None:
        self.resets += 1


@pytest.fixture
def drv() -> Driver:
    return Driver(Echo())


def test_header_registers_identify_a_version_2_device(drv: Driver) -> None:
    assert drv.read(VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC == 0x74726976
    assert drv.read(VIRTIO_MMIO_VERSION) == 2
    assert drv.read(VIRTIO_MMIO_DEVICE_ID) == 42
    assert drv.read(VIRTIO_MMIO_VENDOR_ID) == VIRTIO_MMIO_VENDOR


def test_device_features_offer_version_1_indirect_event_idx_and_the_device_bits(drv: Driver) -> None:
    features = drv.device_features()
    assert features == (1 << 3) | V1 | (1 << VIRTIO_F_INDIRECT_DESC) | (1 << VIRTIO_F_EVENT_IDX)
    drv.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2)
    assert drv.read(VIRTIO_MMIO_DEVICE_FEATURES) == 0


def test_features_ok_sticks_for_a_valid_subset(drv: Driver) -> None:
    assert drv.negotiate(V1 | (1 << 3))
    assert drv.transport.negotiated_features == V1 | (1 << 3)
    assert drv.transport.stats.errors == 0


def test_features_ok_is_refused_without_version_1(drv: Driver) -> None:
    assert not drv.negotiate(1 << 3)
    assert drv.read(VIRTIO_MMIO_STATUS) == AD
    assert "VIRTIO_F_VERSION_1" in drv.transport.warnings[-1]


def test_features_ok_is_refused_for_a_feature_not_offered(drv: Driver) -> None:
    assert not drv.negotiate(V1 | (1 << 7))
    assert drv.read(VIRTIO_MMIO_STATUS) == AD
    assert drv.transport.stats.errors == 1


def test_driver_features_are_frozen_after_features_ok(drv: Driver) -> None:
    drv.negotiate(V1)
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0)
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES, 1 << 3)
    assert drv.transport.negotiated_features == V1
    assert drv.transport.stats.errors == 1


def test_driver_features_words_are_selected_by_driver_features_sel(drv: Driver) -> None:
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1)
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES, 1)
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0)
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES, 1 << 3)
    assert drv.transport.driver_features == V1 | (1 << 3)


def test_status_reads_back_what_the_driver_wrote(drv: Driver) -> None:
    drv.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE)
    assert drv.read(VIRTIO_MMIO_STATUS) == VIRTIO_CONFIG_S_ACKNOWLEDGE


def test_out_of_order_status_write_is_ignored_and_counted(drv: Driver) -> None:
    drv.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_DRIVER_OK)
    assert drv.read(VIRTIO_MMIO_STATUS) == 0
    assert drv.transport.stats.errors == 1
    assert "§3.1.1" in drv.transport.warnings[0]


def test_failed_is_latched_until_reset(drv: Driver) -> None:
    drv.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_FAILED)
    assert drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FAILED
    drv.write(VIRTIO_MMIO_STATUS, 0)
    assert drv.read(VIRTIO_MMIO_STATUS) == 0


def test_queue_num_max_and_ready_of_each_queue(drv: Driver) -> None:
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 1)
    assert drv.read(VIRTIO_MMIO_QUEUE_NUM_MAX) == 64
    assert drv.read(VIRTIO_MMIO_QUEUE_READY) == 0
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 2)
    assert drv.read(VIRTIO_MMIO_QUEUE_NUM_MAX) == 0  # no such queue


def test_queue_addresses_combine_low_and_high_words(drv: Driver) -> None:
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 0)
    drv.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000)
    drv.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x2)
    assert drv.transport.queues[0].desc_addr == 0x2_0000_1000


def test_queue_ready_reads_back_after_setup(drv: Driver) -> None:
    drv.negotiate()
    drv.setup_queue(0)
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 0)
    assert drv.read(VIRTIO_MMIO_QUEUE_READY) == 1


def test_queue_fields_are_frozen_while_ready(drv: Driver) -> None:
    drv.negotiate()
    dq = drv.setup_queue(0)
    drv.write(VIRTIO_MMIO_QUEUE_NUM, 8)
    drv.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 0)
    q = drv.transport.queues[0]
    assert (q.size, q.desc_addr) == (16, dq.desc)
    assert drv.transport.stats.errors == 2


def test_queue_ready_with_a_bad_size_puts_the_device_in_needs_reset(drv: Driver) -> None:
    drv.negotiate()
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 0)
    drv.write(VIRTIO_MMIO_QUEUE_NUM, 12)  # not a power of 2
    drv.write(VIRTIO_MMIO_QUEUE_READY, 1)
    assert drv.read(VIRTIO_MMIO_QUEUE_READY) == 0
    assert drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET


def test_queue_ready_with_rings_outside_ram_puts_the_device_in_needs_reset(drv: Driver) -> None:
    drv.negotiate()
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 0)
    drv.write(VIRTIO_MMIO_QUEUE_NUM, 16)
    drv.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 1)  # 4 GiB: no RAM there
    drv.write(VIRTIO_MMIO_QUEUE_READY, 1)
    assert drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET
    assert "outside guest RAM" in drv.transport.warnings[-1]


def test_notify_processes_the_queue_and_raises_a_used_buffer_interrupt(drv: Driver) -> None:
    drv.start()
    head = drv.queues[0].add([b"ping"], [4])
    drv.notify(0)
    assert drv.queues[0].take_used() == [(head, 4)]
    assert drv.queues[0].written(head, 4) == b"ping"
    assert drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_VRING
    assert drv.irq.level
    assert drv.transport.stats.as_dict() == {
        "notifications": 1,
        "interrupts": 1,
        "requests": 1,
        "bytes_in": 0,
        "bytes_out": 4,
        "errors": 0,
    }


def test_a_repeated_notify_is_harmless(drv: Driver) -> None:
    """Unicorn may replay an MMIO write (DESIGN.md §3)."""
    drv.start()
    drv.queues[0].add([b"x"], [1])
    drv.notify(0)
    drv.notify(0)
    assert drv.transport.stats.requests == 1
    assert drv.transport.stats.interrupts == 1
    assert len(drv.queues[0].take_used()) == 1


def test_reads_have_no_side_effects(drv: Driver) -> None:
    drv.start()
    drv.queues[0].add([b"x"], [1])
    drv.notify(0)
    before = drv.transport.save_state()
    for offset in range(0, 0x100, 4):
        drv.read(offset)
    drv.read(VIRTIO_MMIO_CONFIG)
    assert drv.transport.save_state() == before
    assert drv.irq.level


def test_notify_before_driver_ok_consumes_nothing(drv: Driver) -> None:
    drv.negotiate()
    dq = drv.setup_queue(0)
    dq.add([b"x"], [1])
    drv.notify(0)
    assert dq.take_used() == []
    assert drv.transport.backend.calls == 0  # type: ignore[attr-defined]


def test_notify_of_a_queue_that_is_not_ready_is_counted(drv: Driver) -> None:
    drv.start()
    drv.notify(7)
    assert drv.transport.stats.errors == 1


def test_interrupt_ack_clears_bits_and_lowers_the_line(drv: Driver) -> None:
    drv.start()
    drv.queues[0].add([b"x"], [1])
    drv.notify(0)
    drv.write(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING)
    assert drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) == 0
    assert not drv.irq.level
    drv.write(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING)  # replayed: still fine
    assert not drv.irq.level


def test_config_space_reads_by_width(drv: Driver) -> None:
    assert drv.config(0, 1) == 0x11
    assert drv.config(2, 2) == 0x4433
    assert drv.config(4, 4) == 0x88776655
    assert drv.config(6, 4) == 0  # past the end


def test_config_change_bumps_generation_and_interrupts_after_driver_ok(drv: Driver) -> None:
    gen = drv.read(VIRTIO_MMIO_CONFIG_GENERATION)
    drv.transport.write(VIRTIO_MMIO_CONFIG, 1, 0x99)
    assert drv.read(VIRTIO_MMIO_CONFIG_GENERATION) == gen + 1
    assert not drv.irq.level  # not before DRIVER_OK
    drv.start()
    drv.transport.write(VIRTIO_MMIO_CONFIG, 1, 0x98)
    assert drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_CONFIG
    assert drv.config(0, 1) == 0x98


def test_reset_clears_status_queues_interrupts_and_resets_the_backend(drv: Driver) -> None:
    drv.start()
    drv.queues[0].add([b"x"], [1])
    drv.notify(0)
    resets = drv.transport.backend.resets  # type: ignore[attr-defined]
    drv.write(VIRTIO_MMIO_STATUS, 0)
    t = drv.transport
    assert drv.read(VIRTIO_MMIO_STATUS) == 0
    assert drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) == 0 and not drv.irq.level
    assert not any(q.ready for q in t.queues)
    assert t.queues[0].last_avail_idx == 0 and t.driver_features == 0
    assert t.backend.resets == resets + 1  # type: ignore[attr-defined]


def test_device_can_be_reinitialised_after_reset(drv: Driver) -> None:
    drv.start()
    drv.start()
    head = drv.queues[0].add([b"again"], [5])
    drv.notify(0)
    assert drv.queues[0].take_used() == [(head, 5)]


@pytest.mark.parametrize(("offset", "size"), [(VIRTIO_MMIO_STATUS, 1), (VIRTIO_MMIO_STATUS, 2), (0x72, 2)])
def test_control_register_access_of_the_wrong_width_is_refused(drv: Driver, offset: int, size: int) -> None:
    assert drv.transport.read(offset, size) == 0
    drv.transport.write(offset, size, 1)
    assert drv.read(VIRTIO_MMIO_STATUS) == 0
    assert drv.transport.stats.errors == 2


def test_write_to_a_read_only_register_is_counted(drv: Driver) -> None:
    drv.write(VIRTIO_MMIO_MAGIC_VALUE, 0)
    assert drv.read(VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC
    assert drv.transport.stats.errors == 1


def test_no_shared_memory_regions(drv: Driver) -> None:
    assert drv.read(VIRTIO_MMIO_SHM_LEN_LOW) == 0xFFFFFFFF


def test_needs_reset_after_driver_ok_raises_a_config_interrupt_and_stops_the_device(drv: Driver) -> None:
    drv.start()
    drv.queues[0].set_avail_idx(100)  # 100 ahead of a 16-entry queue
    drv.notify(0)
    assert drv.read(VIRTIO_MMIO_STATUS) == RUNNING | VIRTIO_CONFIG_S_NEEDS_RESET
    assert drv.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_CONFIG
    assert drv.transport.stats.errors == 1
    assert len(drv.transport.warnings) == 1 and "needs reset" in drv.transport.warnings[0]
    drv.notify(0)  # ignored while broken
    assert drv.transport.stats.errors == 1


def test_warnings_are_bounded(drv: Driver) -> None:
    for _ in range(100):
        drv.write(VIRTIO_MMIO_MAGIC_VALUE, 0)
    assert len(drv.transport.warnings) == 32
    assert drv.transport.warnings_dropped == 68
    assert drv.transport.stats.errors == 100


def test_state_round_trips_through_plain_data(drv: Driver) -> None:
    drv.start()
    drv.queues[0].add([b"abc"], [3])
    drv.notify(0)
    state = drv.transport.save_state()
    other = Driver(Echo(), drv.mem)
    other.transport.load_state(state)
    assert other.transport.save_state() == state
    assert other.irq.level  # the line follows the interrupt status
    head = drv.queues[0].add([b"def"], [3])
    other.notify(0)
    assert drv.queues[0].take_used()[-1] == (head, 3)

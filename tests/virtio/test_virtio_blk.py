"""virtio-blk requests by type (virtio 1.2 §5.2.6), through the MMIO transport."""

from __future__ import annotations

import struct

import pytest

from replayvm.virtio.blk import (
    SECTOR_SIZE,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
    VirtioBlk,
)
from replayvm.virtio.features import VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1
from replayvm.virtio.mmio import VIRTIO_MMIO_STATUS
from replayvm.virtio.status import VIRTIO_CONFIG_S_NEEDS_RESET
from tests.virtio.driver import Driver

SECTORS = 16
IMAGE = bytes(i % 251 for i in range(SECTORS * SECTOR_SIZE))


def header(rtype: int, sector: int = 0) -> bytes:
    return struct.pack("<IIQ", rtype, 0, sector)


def request(drv: Driver, rtype: int, sector: int = 0, data: bytes = b"", room: int = 0) -> tuple[int, bytes, int]:
    """(status, data read, used length) of one request."""
    dq = drv.queues[0]
    readable = [header(rtype, sector)] + ([data] if data else [])
    head = dq.add(readable, ([room] if room else []) + [1])
    drv.notify(0)
    used = dq.take_used()
    assert [h for h, _ in used] == [head]
    written = dq.written(head, room + 1)
    return written[room], written[:room], used[0][1]


@pytest.fixture
def disk() -> VirtioBlk:
    return VirtioBlk(IMAGE, serial="rv-disk0")


@pytest.fixture
def drv(disk: VirtioBlk) -> Driver:
    return Driver(disk).start()


def test_capacity_in_config_space(drv: Driver) -> None:
    assert drv.config(0, 4) | drv.config(4, 4) << 32 == SECTORS


def test_flush_offered_read_only_not(drv: Driver) -> None:
    features = drv.device_features()
    assert features >> VIRTIO_BLK_F_FLUSH & 1
    assert not features >> VIRTIO_BLK_F_RO & 1


def test_read_only_disk_offers_ro() -> None:
    assert Driver(VirtioBlk(IMAGE, read_only=True)).device_features() >> VIRTIO_BLK_F_RO & 1


def test_in_reads_sectors_of_the_image(drv: Driver) -> None:
    status, data, used = request(drv, VIRTIO_BLK_T_IN, 2, room=2 * SECTOR_SIZE)
    assert status == VIRTIO_BLK_S_OK
    assert data == IMAGE[2 * SECTOR_SIZE : 4 * SECTOR_SIZE]
    assert used == 2 * SECTOR_SIZE + 1


def test_out_goes_to_the_overlay_and_reads_back(drv: Driver, disk: VirtioBlk) -> None:
    payload = b"\xab" * SECTOR_SIZE
    status, _, used = request(drv, VIRTIO_BLK_T_OUT, 5, data=payload)
    assert (status, used) == (VIRTIO_BLK_S_OK, 1)
    assert request(drv, VIRTIO_BLK_T_IN, 5, room=SECTOR_SIZE)[1] == payload
    assert disk.image == IMAGE  # the base image is never modified
    assert disk.overlay == {5: payload}


def test_request_split_over_many_descriptors_and_indirect(disk: VirtioBlk) -> None:
    drv = Driver(disk).start(features=1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_F_INDIRECT_DESC)
    dq = drv.queues[0]
    hdr = header(VIRTIO_BLK_T_IN, 1)
    head = dq.add([hdr[:3], hdr[3:]], [100, SECTOR_SIZE - 100, 1], indirect=True)
    drv.notify(0)
    assert dq.take_used() == [(head, SECTOR_SIZE + 1)]
    written = dq.written(head, SECTOR_SIZE + 1)
    assert written[:SECTOR_SIZE] == IMAGE[SECTOR_SIZE : 2 * SECTOR_SIZE] and written[-1] == VIRTIO_BLK_S_OK


def test_out_on_a_read_only_disk_is_an_io_error() -> None:
    disk = VirtioBlk(IMAGE, read_only=True)
    drv = Driver(disk).start()
    assert request(drv, VIRTIO_BLK_T_OUT, 0, data=bytes(SECTOR_SIZE))[0] == VIRTIO_BLK_S_IOERR
    assert disk.overlay == {}


@pytest.mark.parametrize(
    ("rtype", "sector", "data", "room"),
    [
        (VIRTIO_BLK_T_IN, SECTORS, b"", SECTOR_SIZE),  # just past the end
        (VIRTIO_BLK_T_IN, SECTORS - 1, b"", 2 * SECTOR_SIZE),  # runs past the end
        (VIRTIO_BLK_T_IN, 2**63, b"", SECTOR_SIZE),
        (VIRTIO_BLK_T_IN, 0, b"", 100),  # not a whole sector
        (VIRTIO_BLK_T_OUT, SECTORS, bytes(SECTOR_SIZE), 0),
        (VIRTIO_BLK_T_OUT, 0, bytes(10), 0),
    ],
)
def test_out_of_range_or_partial_sectors_are_io_errors(
    drv: Driver, disk: VirtioBlk, rtype: int, sector: int, data: bytes, room: int
) -> None:
    assert request(drv, rtype, sector, data, room)[0] == VIRTIO_BLK_S_IOERR
    assert disk.overlay == {}
    assert not drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET


def test_flush_is_ok(drv: Driver) -> None:
    assert request(drv, VIRTIO_BLK_T_FLUSH)[0] == VIRTIO_BLK_S_OK


def test_get_id_returns_the_serial_padded_to_20_bytes(drv: Driver) -> None:
    status, data, used = request(drv, VIRTIO_BLK_T_GET_ID, room=20)
    assert status == VIRTIO_BLK_S_OK
    assert data == b"rv-disk0".ljust(20, b"\0")
    assert used == 21


def test_unknown_request_type_is_unsupported(drv: Driver) -> None:
    assert request(drv, 11)[0] == VIRTIO_BLK_S_UNSUPP  # DISCARD, not offered


def test_request_without_a_header_puts_the_device_in_needs_reset(drv: Driver) -> None:
    dq = drv.queues[0]
    dq.add([b"short"], [1])
    drv.notify(0)
    assert drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET
    assert dq.take_used() == []
    assert drv.transport.stats.errors == 1
    assert "no room for the header" in drv.transport.warnings[0]


def test_request_without_a_status_byte_puts_the_device_in_needs_reset(drv: Driver) -> None:
    drv.queues[0].add([header(VIRTIO_BLK_T_FLUSH)], [])
    drv.notify(0)
    assert drv.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET


def test_image_not_a_multiple_of_512_reads_zero_padded() -> None:
    drv = Driver(VirtioBlk(b"\x01" * 700)).start()
    assert drv.config(0, 4) == 2
    data = request(drv, VIRTIO_BLK_T_IN, 1, room=SECTOR_SIZE)[1]
    assert data == b"\x01" * 188 + bytes(324)


def test_overlay_is_the_state_and_round_trips(drv: Driver, disk: VirtioBlk) -> None:
    request(drv, VIRTIO_BLK_T_OUT, 3, data=b"\x07" * SECTOR_SIZE)
    state = drv.transport.save_state()
    assert state["backend"] == {"overlay": {3: b"\x07" * SECTOR_SIZE}}
    other = VirtioBlk(IMAGE)
    other.load_state(state["backend"])
    assert other.disk_bytes() == disk.disk_bytes()
    assert other.disk_bytes()[3 * SECTOR_SIZE : 4 * SECTOR_SIZE] == b"\x07" * SECTOR_SIZE


def test_reset_keeps_the_disk_contents(drv: Driver, disk: VirtioBlk) -> None:
    request(drv, VIRTIO_BLK_T_OUT, 0, data=b"\x09" * SECTOR_SIZE)
    drv.start()
    assert request(drv, VIRTIO_BLK_T_IN, 0, room=SECTOR_SIZE)[1] == b"\x09" * SECTOR_SIZE


def test_stats_count_requests_and_bytes(drv: Driver) -> None:
    request(drv, VIRTIO_BLK_T_IN, 0, room=SECTOR_SIZE)
    request(drv, VIRTIO_BLK_T_OUT, 0, data=bytes(SECTOR_SIZE))
    stats = drv.transport.stats
    assert (stats.requests, stats.notifications) == (2, 2)
    assert stats.bytes_out == SECTOR_SIZE + 1 + 1
    assert stats.bytes_in == 16 + 16 + SECTOR_SIZE

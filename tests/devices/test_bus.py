"""Port bus: range table, unknown ports, windows with an offset."""

from __future__ import annotations

import pytest

from replayvm.devices.base import ByteDevice, Device
from replayvm.devices.bus import PortBus
from replayvm.errors import ConfigError


class Recorder(Device):
    name = "recorder"

    def __init__(self) -> None:
        self.writes: list[tuple[int, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        return offset

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))


class Bytes(ByteDevice):
    def read_byte(self, offset: int) -> int:
        return 0x10 + offset if offset < 2 else 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        pass


def test_register_maps_ports_to_window_offsets() -> None:
    bus, dev = PortBus(), Recorder()
    bus.register(0x3F8, 8, dev)
    assert bus.read(0x3FD, 1) == 5
    bus.write(0x3F8, 1, 0x41)
    assert dev.writes == [(0, 1, 0x41)]


def test_overlapping_ranges_are_a_config_error() -> None:
    bus = PortBus()
    bus.register(0x40, 4, Recorder())
    with pytest.raises(ConfigError):
        bus.register(0x43, 2, Recorder())


def test_adjacent_ranges_do_not_overlap() -> None:
    bus = PortBus()
    bus.register(0x40, 4, Recorder())
    bus.register(0x44, 1, Recorder())
    assert [base for base, _, _ in bus.ranges()] == [0x40, 0x44]


def test_range_outside_io_space_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        PortBus().register(0xFFFF, 2, Recorder())


@pytest.mark.parametrize(("size", "value"), [(1, 0xFF), (2, 0xFFFF), (4, 0xFFFFFFFF)])
def test_unknown_port_reads_all_ones_and_counts(size: int, value: int) -> None:
    bus = PortBus()
    assert bus.read(0x80, size) == value
    assert bus.unknown_reads == 1


def test_unknown_port_write_is_dropped_and_counted() -> None:
    bus = PortBus()
    bus.write(0x80, 1, 0x12)
    assert bus.unknown_writes == 1


def test_offset_parameter_maps_split_windows() -> None:
    bus, dev = PortBus(), Recorder()
    bus.register(0x60, 1, dev, offset=0)
    bus.register(0x64, 1, dev, offset=4)
    assert (bus.read(0x60, 1), bus.read(0x64, 1)) == (0, 4)
    assert bus.read(0x61, 1) == 0xFF


def test_byte_device_splits_wide_access_low_byte_first() -> None:
    bus = PortBus()
    bus.register(0x70, 2, Bytes())
    assert bus.read(0x70, 2) == 0x1110
    assert bus.read(0x71, 4) == 0xFFFFFF11

"""isa-debug-exit: the exit code QEMU would give."""

from __future__ import annotations

import pytest

from replayvm.devices.debug_exit import DebugExit


@pytest.fixture
def codes() -> list[int]:
    return []


@pytest.mark.parametrize(
    ("size", "value", "code"), [(1, 0, 1), (1, 0x10, 0x21), (2, 0x1234, 0x2469), (4, 0xFFFFFFFF, 0x1FFFFFFFF)]
)
def test_write_exits_with_value_shifted_left_plus_one(codes: list[int], size: int, value: int, code: int) -> None:
    DebugExit(codes.append).write(0, size, value)
    assert codes == [code]


def test_write_ignores_bits_beyond_access_size(codes: list[int]) -> None:
    DebugExit(codes.append).write(0, 1, 0x1FF)
    assert codes == [0x1FF]


def test_write_at_any_offset_exits(codes: list[int]) -> None:
    DebugExit(codes.append).write(3, 1, 2)
    assert codes == [5]


@pytest.mark.parametrize("size", [1, 2, 4])
def test_reads_return_all_ones(codes: list[int], size: int) -> None:
    assert DebugExit(codes.append).read(0, size) == (1 << (8 * size)) - 1
    assert codes == []

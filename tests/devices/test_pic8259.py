"""8259A pair, register by register and through the INTA cycle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replayvm.devices.pic8259 import (
    ICW1_IC4,
    ICW1_INIT,
    ICW1_LTIM,
    ICW1_SNGL,
    ICW4_AEOI,
    ICW4_SFNM,
    OCW3_ESMM,
    OCW3_POLL,
    OCW3_RIS,
    OCW3_RR,
    OCW3_SELECT,
    OCW3_SMM,
    PIC_COMMAND,
    PIC_DATA,
    POLL_INTERRUPT,
    Elcr,
    Pic8259,
    Pic8259Pair,
)

ICW4_8086 = 0x01
EOI = 0x20
SPECIFIC_EOI = 0x60
ROTATE_EOI = 0xA0
SET_PRIORITY = 0xC0
READ_ISR = OCW3_SELECT | OCW3_RR | OCW3_RIS
READ_IRR = OCW3_SELECT | OCW3_RR


def init(chip: Pic8259, base: int, icw3: int, icw4: int = ICW4_8086) -> None:
    """The Linux/BIOS initialization sequence."""
    chip.write(PIC_COMMAND, 1, ICW1_INIT | ICW1_IC4)
    chip.write(PIC_DATA, 1, base)
    chip.write(PIC_DATA, 1, icw3)
    chip.write(PIC_DATA, 1, icw4)


@pytest.fixture
def pair() -> Pic8259Pair:
    pair = Pic8259Pair()
    init(pair.master, 0x20, 0x04)
    init(pair.slave, 0x28, 0x02)
    return pair


def eoi(chip: Pic8259, command: int = EOI) -> None:
    chip.write(PIC_COMMAND, 1, command)


def isr(chip: Pic8259) -> int:
    chip.write(PIC_COMMAND, 1, READ_ISR)
    return chip.read(PIC_COMMAND, 1)


def irr(chip: Pic8259) -> int:
    chip.write(PIC_COMMAND, 1, READ_IRR)
    return chip.read(PIC_COMMAND, 1)


# -- OCW1 / ICWs ---------------------------------------------------------------


def test_imr_reads_back(pair: Pic8259Pair) -> None:
    pair.master.write(PIC_DATA, 1, 0xB5)
    assert pair.master.read(PIC_DATA, 1) == 0xB5


def test_icw1_clears_imr_and_isr(pair: Pic8259Pair) -> None:
    pair.master.write(PIC_DATA, 1, 0xFF)
    pair.master.write(PIC_COMMAND, 1, ICW1_INIT | ICW1_IC4)
    assert pair.master.read(PIC_DATA, 1) == 0


def test_icw2_sets_vector_base(pair: Pic8259Pair) -> None:
    pair.irq_line(1).pulse()
    assert pair.acknowledge() == 0x21


def test_icw2_ignores_low_three_bits() -> None:
    pair = Pic8259Pair()
    init(pair.master, 0x37, 0x04)
    pair.irq_line(0).pulse()
    assert pair.acknowledge() == 0x30


def test_single_mode_skips_icw3() -> None:
    pair = Pic8259Pair()
    pair.master.write(PIC_COMMAND, 1, ICW1_INIT | ICW1_SNGL | ICW1_IC4)
    pair.master.write(PIC_DATA, 1, 0x40)
    pair.master.write(PIC_DATA, 1, ICW4_8086)  # ICW4, not ICW3
    pair.master.write(PIC_DATA, 1, 0xFE)  # OCW1
    assert pair.master.read(PIC_DATA, 1) == 0xFE


def test_without_ic4_data_after_icw3_is_imr() -> None:
    pair = Pic8259Pair()
    pair.master.write(PIC_COMMAND, 1, ICW1_INIT)
    pair.master.write(PIC_DATA, 1, 0x20)
    pair.master.write(PIC_DATA, 1, 0x04)
    pair.master.write(PIC_DATA, 1, 0x0F)
    assert pair.master.read(PIC_DATA, 1) == 0x0F


# -- edge triggering and IRR ---------------------------------------------------


def test_rising_edge_sets_irr(pair: Pic8259Pair) -> None:
    pair.irq_line(3).raise_()
    assert irr(pair.master) == 1 << 3


def test_edge_request_is_latched_after_line_falls(pair: Pic8259Pair) -> None:
    pair.irq_line(3).pulse()
    assert irr(pair.master) == 1 << 3
    assert pair.has_interrupt()


def test_held_line_does_not_retrigger_after_ack(pair: Pic8259Pair) -> None:
    pair.irq_line(4).raise_()
    pair.acknowledge()
    eoi(pair.master)
    assert not pair.has_interrupt()


def test_icw1_requires_new_edge(pair: Pic8259Pair) -> None:
    pair.irq_line(4).raise_()
    init(pair.master, 0x20, 0x04)
    assert irr(pair.master) == 0
    pair.irq_line(4).lower()
    pair.irq_line(4).raise_()
    assert irr(pair.master) == 1 << 4


def test_level_mode_irr_follows_line() -> None:
    pair = Pic8259Pair()
    pair.master.write(PIC_COMMAND, 1, ICW1_INIT | ICW1_LTIM | ICW1_IC4)
    for value in (0x20, 0x04, ICW4_8086):
        pair.master.write(PIC_DATA, 1, value)
    line = pair.irq_line(5)
    line.raise_()
    assert pair.acknowledge() == 0x25
    eoi(pair.master)
    assert pair.has_interrupt()  # still high: requests again
    line.lower()
    assert not pair.has_interrupt()


# -- priority, ISR, EOI ----------------------------------------------------------


def test_ack_moves_request_from_irr_to_isr(pair: Pic8259Pair) -> None:
    pair.irq_line(1).pulse()
    pair.acknowledge()
    assert irr(pair.master) == 0
    assert isr(pair.master) == 1 << 1


def test_lowest_numbered_irq_wins(pair: Pic8259Pair) -> None:
    pair.irq_line(6).pulse()
    pair.irq_line(3).pulse()
    assert pair.acknowledge() == 0x23


def test_in_service_blocks_lower_priority(pair: Pic8259Pair) -> None:
    pair.irq_line(3).pulse()
    pair.acknowledge()
    pair.irq_line(6).pulse()
    assert not pair.has_interrupt()
    eoi(pair.master)
    assert pair.acknowledge() == 0x26


def test_higher_priority_nests_over_in_service(pair: Pic8259Pair) -> None:
    pair.irq_line(6).pulse()
    pair.acknowledge()
    pair.irq_line(1).pulse()
    assert pair.acknowledge() == 0x21
    assert isr(pair.master) == (1 << 1) | (1 << 6)


def test_masked_request_is_not_signalled(pair: Pic8259Pair) -> None:
    pair.master.write(PIC_DATA, 1, 1 << 4)
    pair.irq_line(4).pulse()
    assert not pair.has_interrupt()
    pair.master.write(PIC_DATA, 1, 0)
    assert pair.acknowledge() == 0x24


def test_nonspecific_eoi_clears_highest_in_service(pair: Pic8259Pair) -> None:
    pair.irq_line(6).pulse()
    pair.acknowledge()
    pair.irq_line(1).pulse()
    pair.acknowledge()
    eoi(pair.master)
    assert isr(pair.master) == 1 << 6


def test_specific_eoi_clears_named_level(pair: Pic8259Pair) -> None:
    pair.irq_line(6).pulse()
    pair.acknowledge()
    pair.irq_line(1).pulse()
    pair.acknowledge()
    eoi(pair.master, SPECIFIC_EOI | 6)
    assert isr(pair.master) == 1 << 1


def test_rotate_on_eoi_makes_serviced_irq_lowest(pair: Pic8259Pair) -> None:
    pair.irq_line(0).pulse()
    pair.acknowledge()
    eoi(pair.master, ROTATE_EOI)
    pair.irq_line(0).pulse()
    pair.irq_line(5).pulse()
    assert pair.acknowledge() == 0x25


def test_set_priority_command(pair: Pic8259Pair) -> None:
    eoi(pair.master, SET_PRIORITY | 4)  # IR4 lowest, IR5 highest
    pair.irq_line(3).pulse()
    pair.irq_line(6).pulse()
    assert pair.acknowledge() == 0x26


def test_auto_eoi_leaves_isr_clear() -> None:
    pair = Pic8259Pair()
    init(pair.master, 0x20, 0x04, ICW4_8086 | ICW4_AEOI)
    pair.irq_line(1).pulse()
    assert pair.acknowledge() == 0x21
    assert isr(pair.master) == 0


def test_special_mask_mode_lets_lower_priority_through(pair: Pic8259Pair) -> None:
    pair.irq_line(3).pulse()
    pair.acknowledge()
    pair.master.write(PIC_DATA, 1, 1 << 3)
    pair.master.write(PIC_COMMAND, 1, OCW3_SELECT | OCW3_ESMM | OCW3_SMM)
    pair.irq_line(6).pulse()
    assert pair.acknowledge() == 0x26


# -- OCW3 reads and poll -------------------------------------------------------------


def test_ocw3_selects_isr_until_changed(pair: Pic8259Pair) -> None:
    pair.irq_line(7).pulse()
    pair.master.write(PIC_COMMAND, 1, READ_ISR)
    assert pair.master.read(PIC_COMMAND, 1) == 0
    assert pair.master.read(PIC_COMMAND, 1) == 0
    pair.master.write(PIC_COMMAND, 1, READ_IRR)
    assert pair.master.read(PIC_COMMAND, 1) == 1 << 7


def test_poll_returns_and_acknowledges_highest_request(pair: Pic8259Pair) -> None:
    pair.irq_line(5).pulse()
    pair.master.write(PIC_COMMAND, 1, OCW3_SELECT | OCW3_POLL)
    assert pair.master.read(PIC_COMMAND, 1) == POLL_INTERRUPT | 5
    assert isr(pair.master) == 1 << 5


def test_poll_without_request_reads_zero(pair: Pic8259Pair) -> None:
    pair.master.write(PIC_COMMAND, 1, OCW3_SELECT | OCW3_POLL)
    assert pair.master.read(PIC_DATA, 1) == 0
    assert pair.master.read(PIC_DATA, 1) == 0  # the poll applied to one read only


# -- cascade and spurious ------------------------------------------------------------


def test_slave_irq_is_delivered_through_master_ir2(pair: Pic8259Pair) -> None:
    pair.irq_line(12).pulse()
    assert pair.has_interrupt()
    assert pair.acknowledge() == 0x2C
    assert isr(pair.slave) == 1 << 4
    assert isr(pair.master) == 1 << 2


def test_slave_needs_eoi_on_both_chips(pair: Pic8259Pair) -> None:
    pair.irq_line(8).pulse()
    pair.acknowledge()
    pair.irq_line(9).pulse()
    assert not pair.has_interrupt()
    eoi(pair.slave)
    assert not pair.has_interrupt()  # master IR2 still in service
    eoi(pair.master)
    assert pair.acknowledge() == 0x29


def test_masked_cascade_blocks_slave(pair: Pic8259Pair) -> None:
    pair.master.write(PIC_DATA, 1, 1 << 2)
    pair.irq_line(14).pulse()
    assert not pair.has_interrupt()


def test_spurious_irq7_when_nothing_pending(pair: Pic8259Pair) -> None:
    assert pair.acknowledge() == 0x27
    assert isr(pair.master) == 0


def test_spurious_irq15_sets_master_ir2_in_service(pair: Pic8259Pair) -> None:
    pair.irq_line(10).pulse()
    pair.slave.write(PIC_DATA, 1, 1 << 2)  # masked after the request reached the master
    assert pair.acknowledge() == 0x2F
    assert isr(pair.slave) == 0
    assert isr(pair.master) == 1 << 2


def test_sfnm_lets_higher_slave_irq_nest(pair: Pic8259Pair) -> None:
    init(pair.master, 0x20, 0x04, ICW4_8086 | ICW4_SFNM)
    pair.irq_line(12).pulse()
    pair.acknowledge()
    pair.irq_line(9).pulse()
    assert pair.acknowledge() == 0x29


# -- ELCR --------------------------------------------------------------------------------


def test_elcr_makes_line_level_triggered(pair: Pic8259Pair) -> None:
    Elcr(pair).write(0, 1, 1 << 5)
    line = pair.irq_line(5)
    line.raise_()
    assert pair.acknowledge() == 0x25
    eoi(pair.master)
    assert pair.has_interrupt()
    line.lower()
    assert not pair.has_interrupt()


def test_elcr_masks_edge_only_irqs(pair: Pic8259Pair) -> None:
    elcr = Elcr(pair)
    elcr.write(0, 2, 0xFFFF)
    assert elcr.read(0, 2) == 0xDEF8


# -- state ---------------------------------------------------------------------------------


def test_save_load_state_round_trip(pair: Pic8259Pair) -> None:
    pair.master.write(PIC_DATA, 1, 0x80)
    pair.irq_line(4).raise_()
    pair.irq_line(13).pulse()
    pair.acknowledge()
    pair.irq_line(1).pulse()
    state = pair.save_state()
    other = Pic8259Pair()
    other.load_state(state)
    assert other.save_state() == state
    assert other.irq_line(2).level == pair.irq_line(2).level
    assert [other.acknowledge() for _ in range(3)] == [pair.acknowledge() for _ in range(3)]


def test_each_chip_round_trips_alone(pair: Pic8259Pair) -> None:
    pair.irq_line(9).pulse()
    state = pair.slave.save_state()
    other = Pic8259Pair()
    other.slave.load_state(state)
    assert other.slave.save_state() == state
    assert other.irq_line(2).level


def test_state_is_plain_data(pair: Pic8259Pair) -> None:
    state = pair.save_state()
    assert all(isinstance(v, list) and all(isinstance(x, int) for x in v) for v in state.values())


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("w"), st.integers(0, 3), st.integers(0, 255)),
            st.tuples(st.just("r"), st.integers(0, 3), st.just(0)),
            st.tuples(st.just("irq"), st.integers(0, 15).filter(lambda n: n != 2), st.booleans()),
            st.tuples(st.just("ack"), st.just(0), st.just(0)),
        ),
        max_size=80,
    )
)
def test_random_sequences_never_raise_and_keep_bytes(ops: list[tuple[str, int, int]]) -> None:
    pair = Pic8259Pair()
    for kind, a, b in ops:
        chip = pair.master if a < 2 else pair.slave
        if kind == "w":
            chip.write(a & 1, 1, b)
        elif kind == "r":
            assert 0 <= chip.read(a & 1, 1) <= 0xFF
        elif kind == "irq":
            pair.irq_line(a).set_level(bool(b))
        else:
            assert 0 <= pair.acknowledge() <= 0xFF
    for field in ("irr", "isr", "imr"):
        assert all(0 <= v <= 0xFF for v in pair.save_state()[field])

"""PC16550D UART, register by register."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replayvm.devices.base import IrqLine
from replayvm.devices.uart16550 import (
    FCR_FIFO_ENABLE,
    FCR_RX_RESET,
    IER_EDSSI,
    IER_ELSI,
    IER_ERBFI,
    IER_ETBEI,
    IIR_CHAR_TIMEOUT,
    IIR_FIFOS_ENABLED,
    IIR_LINE_STATUS,
    IIR_MODEM_STATUS,
    IIR_NO_INT,
    IIR_RX_DATA,
    IIR_THR_EMPTY,
    LCR_DLAB,
    LSR_DR,
    LSR_OE,
    LSR_TEMT,
    LSR_THRE,
    MCR_DTR,
    MCR_LOOP,
    MCR_OUT1,
    MCR_OUT2,
    MCR_RTS,
    MSR_CTS,
    MSR_DCD,
    MSR_DCTS,
    MSR_DDCD,
    MSR_DDSR,
    MSR_DSR,
    MSR_RI,
    MSR_TERI,
    UART_DLL,
    UART_DLM,
    UART_FCR,
    UART_IER,
    UART_IIR,
    UART_LCR,
    UART_LSR,
    UART_MCR,
    UART_MSR,
    UART_RBR,
    UART_SCR,
    UART_THR,
    UART_WINDOW,
    Uart16550,
)

FIFO_TRIGGER_4 = 0x40
FIFO_TRIGGER_14 = 0xC0


class Port:
    def __init__(self) -> None:
        self.irq = IrqLine("irq4")
        self.sent: list[int] = []
        self.uart = Uart16550(self.irq, self.sent.append)

    def r(self, offset: int) -> int:
        return self.uart.read(offset, 1)

    def w(self, offset: int, value: int) -> None:
        self.uart.write(offset, 1, value)


@pytest.fixture
def port() -> Port:
    return Port()


# -- reset values ----------------------------------------------------------


def test_lsr_reports_thr_empty_after_reset(port: Port) -> None:
    assert port.r(UART_LSR) == LSR_THRE | LSR_TEMT


def test_iir_reports_no_interrupt_after_reset(port: Port) -> None:
    assert port.r(UART_IIR) == IIR_NO_INT
    assert not port.irq.level


def test_msr_reports_host_lines_ready_after_reset(port: Port) -> None:
    assert port.r(UART_MSR) == MSR_DCD | MSR_DSR | MSR_CTS


# -- THR / RBR -------------------------------------------------------------


def test_thr_write_transmits_byte_immediately(port: Port) -> None:
    port.w(UART_THR, ord("A"))
    assert port.sent == [ord("A")]
    assert port.uart.bytes_tx == 1
    assert port.r(UART_LSR) & (LSR_THRE | LSR_TEMT) == LSR_THRE | LSR_TEMT


def test_rbr_returns_received_byte_and_clears_dr(port: Port) -> None:
    port.uart.receive(0x42)
    assert port.r(UART_LSR) & LSR_DR
    assert port.r(UART_RBR) == 0x42
    assert not port.r(UART_LSR) & LSR_DR
    assert port.uart.bytes_rx == 1


def test_rbr_reads_zero_when_empty(port: Port) -> None:
    assert port.r(UART_RBR) == 0


def test_rx_fifo_preserves_order(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE)
    for b in b"hello":
        port.uart.receive(b)
    assert bytes(port.r(UART_RBR) for _ in range(5)) == b"hello"


# -- DLAB ------------------------------------------------------------------


def test_dlab_selects_divisor_latches(port: Port) -> None:
    port.w(UART_LCR, LCR_DLAB)
    port.w(UART_DLL, 0x01)
    port.w(UART_DLM, 0x02)
    assert (port.r(UART_DLL), port.r(UART_DLM)) == (0x01, 0x02)
    assert port.sent == []
    port.w(UART_LCR, 0x03)
    assert port.r(UART_IER) == 0


def test_lcr_and_scr_read_back(port: Port) -> None:
    port.w(UART_LCR, 0x1B)
    port.w(UART_SCR, 0xA5)
    assert (port.r(UART_LCR), port.r(UART_SCR)) == (0x1B, 0xA5)


def test_ier_keeps_low_four_bits(port: Port) -> None:
    port.w(UART_IER, 0xF0 | IER_ERBFI)
    assert port.r(UART_IER) == IER_ERBFI


# -- THRE interrupt --------------------------------------------------------


def test_enabling_etbei_raises_thre_interrupt(port: Port) -> None:
    port.w(UART_IER, IER_ETBEI)
    assert port.irq.level
    assert port.r(UART_IIR) == IIR_THR_EMPTY


def test_iir_read_clears_thre_interrupt(port: Port) -> None:
    port.w(UART_IER, IER_ETBEI)
    port.r(UART_IIR)
    assert not port.irq.level
    assert port.r(UART_IIR) == IIR_NO_INT


def test_thr_write_raises_a_new_thre_edge(port: Port) -> None:
    port.w(UART_IER, IER_ETBEI)
    port.r(UART_IIR)
    edges = port.irq.raises
    port.w(UART_THR, 0x41)
    assert port.irq.level
    assert port.irq.raises == edges + 1


def test_thr_write_while_thre_pending_pulses_line(port: Port) -> None:
    port.w(UART_IER, IER_ETBEI)
    edges = port.irq.raises
    port.w(UART_THR, 0x41)
    assert port.irq.raises == edges + 1


def test_disabling_etbei_lowers_line(port: Port) -> None:
    port.w(UART_IER, IER_ETBEI)
    port.w(UART_IER, 0)
    assert not port.irq.level


# -- received data interrupts ------------------------------------------------


def test_rx_data_interrupt_without_fifo(port: Port) -> None:
    port.w(UART_IER, IER_ERBFI)
    port.uart.receive(1)
    assert port.irq.level
    assert port.r(UART_IIR) == IIR_RX_DATA
    port.r(UART_RBR)
    assert not port.irq.level


def test_char_timeout_below_trigger_level(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE | FIFO_TRIGGER_4)
    port.w(UART_IER, IER_ERBFI)
    port.uart.receive(1)
    assert port.irq.level
    assert port.r(UART_IIR) == IIR_FIFOS_ENABLED | IIR_CHAR_TIMEOUT


def test_rx_data_at_trigger_level(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE | FIFO_TRIGGER_4)
    port.w(UART_IER, IER_ERBFI)
    for b in range(4):
        port.uart.receive(b)
    assert port.r(UART_IIR) == IIR_FIFOS_ENABLED | IIR_RX_DATA
    port.r(UART_RBR)
    assert port.r(UART_IIR) == IIR_FIFOS_ENABLED | IIR_CHAR_TIMEOUT


def test_draining_fifo_lowers_line(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE | FIFO_TRIGGER_14)
    port.w(UART_IER, IER_ERBFI)
    for b in range(3):
        port.uart.receive(b)
    for _ in range(3):
        port.r(UART_RBR)
    assert not port.irq.level


def test_rx_interrupt_outranks_thre(port: Port) -> None:
    port.w(UART_IER, IER_ERBFI | IER_ETBEI)
    port.uart.receive(7)
    assert port.r(UART_IIR) == IIR_RX_DATA
    port.r(UART_RBR)
    assert port.r(UART_IIR) == IIR_THR_EMPTY


def test_irq_is_not_gated_by_out2(port: Port) -> None:
    port.w(UART_MCR, 0)
    port.w(UART_IER, IER_ERBFI)
    port.uart.receive(1)
    assert port.irq.level


# -- FCR -------------------------------------------------------------------


def test_iir_reports_fifos_enabled(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE)
    assert port.r(UART_IIR) == IIR_FIFOS_ENABLED | IIR_NO_INT


def test_fcr_rx_reset_empties_fifo(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE)
    port.uart.receive(1)
    port.w(UART_FCR, FCR_FIFO_ENABLE | FCR_RX_RESET)
    assert not port.r(UART_LSR) & LSR_DR


def test_fcr_enable_change_clears_fifo(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE)
    port.uart.receive(1)
    port.w(UART_FCR, 0)
    assert not port.r(UART_LSR) & LSR_DR
    assert port.r(UART_IIR) == IIR_NO_INT


def test_fcr_other_bits_ignored_without_enable(port: Port) -> None:
    port.w(UART_FCR, FIFO_TRIGGER_14)
    port.w(UART_IER, IER_ERBFI)
    port.uart.receive(1)
    assert port.r(UART_IIR) == IIR_RX_DATA


# -- can_receive / overrun ---------------------------------------------------


def test_can_receive_until_fifo_full(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE)
    for b in range(16):
        assert port.uart.can_receive()
        port.uart.receive(b)
    assert not port.uart.can_receive()


def test_can_receive_one_byte_without_fifo(port: Port) -> None:
    port.uart.receive(1)
    assert not port.uart.can_receive()
    port.r(UART_RBR)
    assert port.uart.can_receive()


def test_overrun_with_fifo_drops_new_byte_and_sets_oe(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE)
    for b in range(17):
        port.uart.receive(b)
    assert port.r(UART_LSR) & LSR_OE
    assert [port.r(UART_RBR) for _ in range(16)] == list(range(16))


def test_overrun_without_fifo_replaces_rbr(port: Port) -> None:
    port.uart.receive(1)
    port.uart.receive(2)
    assert port.r(UART_LSR) & LSR_OE
    assert port.r(UART_RBR) == 2


def test_lsr_read_clears_overrun(port: Port) -> None:
    port.uart.receive(1)
    port.uart.receive(2)
    port.r(UART_LSR)
    assert not port.r(UART_LSR) & LSR_OE


def test_overrun_raises_line_status_interrupt_first(port: Port) -> None:
    port.w(UART_IER, IER_ELSI | IER_ERBFI)
    port.uart.receive(1)
    port.uart.receive(2)
    assert port.r(UART_IIR) == IIR_LINE_STATUS
    port.r(UART_LSR)
    assert port.r(UART_IIR) == IIR_RX_DATA


# -- MCR / MSR and loopback ---------------------------------------------------


def test_mcr_keeps_five_bits(port: Port) -> None:
    port.w(UART_MCR, 0xFF)
    assert port.r(UART_MCR) == 0x1F


def test_loopback_maps_mcr_outputs_to_msr_inputs(port: Port) -> None:
    port.w(UART_MCR, MCR_LOOP | MCR_RTS | MCR_OUT2)  # Linux's 8250 autoconfig probe
    assert port.r(UART_MSR) & 0xF0 == MSR_DCD | MSR_CTS
    port.w(UART_MCR, MCR_LOOP | MCR_DTR | MCR_OUT1)
    assert port.r(UART_MSR) & 0xF0 == MSR_DSR | MSR_RI


def test_loopback_sets_delta_bits(port: Port) -> None:
    port.w(UART_MCR, MCR_LOOP | MCR_OUT1)
    port.r(UART_MSR)
    port.w(UART_MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2)
    assert port.r(UART_MSR) == MSR_DCD | MSR_DSR | MSR_CTS | MSR_DDCD | MSR_DDSR | MSR_DCTS | MSR_TERI


def test_msr_read_clears_deltas(port: Port) -> None:
    port.w(UART_MCR, MCR_LOOP)
    port.r(UART_MSR)
    assert port.r(UART_MSR) & 0x0F == 0


def test_loopback_modem_status_interrupt(port: Port) -> None:
    port.w(UART_MCR, MCR_LOOP)
    port.r(UART_MSR)
    port.w(UART_IER, IER_EDSSI)
    port.w(UART_MCR, MCR_LOOP | MCR_RTS)
    assert port.irq.level
    assert port.r(UART_IIR) == IIR_MODEM_STATUS
    port.r(UART_MSR)
    assert not port.irq.level


def test_loopback_transmit_goes_to_receiver(port: Port) -> None:
    port.w(UART_MCR, MCR_LOOP)
    port.w(UART_THR, 0x5A)
    assert port.sent == []
    assert port.r(UART_RBR) == 0x5A


def test_loopback_refuses_host_input(port: Port) -> None:
    port.w(UART_MCR, MCR_LOOP)
    assert not port.uart.can_receive()


def test_wide_access_splits_into_byte_registers(port: Port) -> None:
    port.w(UART_LCR, 0x03)
    port.w(UART_MCR, MCR_DTR)
    assert port.uart.read(UART_LCR, 2) == MCR_DTR << 8 | 0x03
    assert port.uart.read(UART_SCR, 2) >> 8 == 0xFF  # beyond the window


# -- state -----------------------------------------------------------------


def test_save_load_state_round_trip(port: Port) -> None:
    port.w(UART_FCR, FCR_FIFO_ENABLE | FIFO_TRIGGER_4)
    port.w(UART_IER, IER_ERBFI | IER_ETBEI)
    port.w(UART_SCR, 0x77)
    port.w(UART_THR, 0x31)
    for b in b"abc":
        port.uart.receive(b)
    state = port.uart.save_state()
    other = Port()
    other.uart.load_state(state)
    assert other.uart.save_state() == state
    assert other.irq.level == port.irq.level
    assert [other.r(o) for o in range(UART_WINDOW)] == [port.r(o) for o in range(UART_WINDOW)]


def test_state_is_plain_data(port: Port) -> None:
    port.uart.receive(1)
    assert all(isinstance(v, int | bytes | bool) for v in port.uart.save_state().values())


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 0xFFFF), st.booleans()), max_size=60))
def test_random_accesses_never_raise_and_line_follows_iir(ops: list[tuple[int, int, bool]]) -> None:
    port = Port()
    for offset, value, is_write in ops:
        if is_write:
            port.uart.write(offset, 1 + (value >> 15), value)
        else:
            port.uart.read(offset, 1)
        if port.uart.can_receive():
            port.uart.receive(value & 0xFF)
        assert len(port.uart.save_state()["rx"]) <= 16
    level = port.irq.level
    assert level == (not port.r(UART_IIR) & IIR_NO_INT)

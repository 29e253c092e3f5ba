"""National Semiconductor PC16550D UART (datasheet, "PC16550D Universal
Asynchronous Receiver/Transmitter with FIFOs", June 1995), as the PC's COM1.

Choices where the datasheet leaves room or where time is virtual:

- Transmission is instantaneous: a THR write calls ``on_tx(byte)`` at once,
  so THRE and TEMT (LSR) are always set and the TX FIFO never holds a byte.
  The THR-empty interrupt follows QEMU (hw/char/serial.c) and the real part:
  it becomes pending when IER.ETBEI goes 1 while THR is empty, and again after
  every transmitted byte; reading IIR while it is the reported source, or
  writing THR, clears it. A THR write therefore lowers then raises the line
  (an edge, as on hardware when the byte moves to the shift register).
- Character timeout (datasheet, "FIFO Interrupt Mode Operation"): with no
  receive timing to measure, the receiver counts as idle as soon as a byte
  arrives. While the RX FIFO is non-empty and below the trigger level, IIR
  reports the character timeout (0xC); at or above it, received data
  available (0x4). Both are enabled by IER.ERBFI and clear when the guest
  drains the FIFO.
- The IRQ line is high exactly while IIR reports a pending interrupt. Like
  QEMU, MCR.OUT2 does not gate it: guests written for QEMU may never set
  OUT2. (On a real PC, OUT2 enables the UART's IRQ driver on the bus.)
- The modem inputs of the far end are always ready (DCD, DSR, CTS set, RI
  clear). In loopback mode (MCR.LOOP) they are MCR's outputs: DTR->DSR,
  RTS->CTS, OUT1->RI, OUT2->DCD, with delta bits and the modem-status
  interrupt working as the datasheet describes. Transmitted bytes go to the
  receiver, and host input waits (``can_receive`` is false) because the
  serial input is disconnected.
- The divisor latch is kept for the guest to read back; it has no effect on
  timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replayvm.devices.base import ByteDevice, IrqLine

# Register offsets (datasheet Table II). DLAB = LCR bit 7 selects the latches.
UART_RBR = 0  # receiver buffer (read, DLAB=0)
UART_THR = 0  # transmitter holding (write, DLAB=0)
UART_DLL = 0  # divisor latch LSB (DLAB=1)
UART_IER = 1  # interrupt enable (DLAB=0)
UART_DLM = 1  # divisor latch MSB (DLAB=1)
UART_IIR = 2  # interrupt identification (read)
UART_FCR = 2  # FIFO control (write)
UART_LCR = 3  # line control
UART_MCR = 4  # modem control
UART_LSR = 5  # line status
UART_MSR = 6  # modem status
UART_SCR = 7  # scratch
UART_WINDOW = 8

IER_ERBFI = 0x01  # received data available (and character timeout)
IER_ETBEI = 0x02  # transmitter holding register empty
IER_ELSI = 0x04  # receiver line status
IER_EDSSI = 0x08  # modem status
IER_MASK = 0x0F

# IIR interrupt identification, in priority order (datasheet Table IV).
IIR_NO_INT = 0x01
IIR_LINE_STATUS = 0x06
IIR_RX_DATA = 0x04
IIR_CHAR_TIMEOUT = 0x0C
IIR_THR_EMPTY = 0x02
IIR_MODEM_STATUS = 0x00
IIR_FIFOS_ENABLED = 0xC0

FCR_FIFO_ENABLE = 0x01
FCR_RX_RESET = 0x02
FCR_DMA_MODE = 0x08
FCR_TRIGGER = 0xC0
RX_TRIGGER_LEVELS = (1, 4, 8, 14)  # indexed by FCR bits 7-6

LCR_DLAB = 0x80

MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08
MCR_LOOP = 0x10
MCR_MASK = 0x1F

LSR_DR = 0x01
LSR_OE = 0x02
LSR_PE = 0x04
LSR_FE = 0x08
LSR_BI = 0x10
LSR_THRE = 0x20
LSR_TEMT = 0x40
LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI  # sources of the line status interrupt

MSR_DCTS = 0x01
MSR_DDSR = 0x02
MSR_TERI = 0x04
MSR_DDCD = 0x08
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
MSR_DELTAS = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD
MSR_LINES = MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD

FIFO_SIZE = 16
HOST_MODEM_LINES = MSR_DCD | MSR_DSR | MSR_CTS
RESET_DIVISOR = 12  # 9600 baud from 1.8432 MHz; the datasheet leaves it undefined


class Uart16550(ByteDevice):
    """COM port: an 8-port window (COM1 is 0x3F8, IRQ4)."""

    name = "uart16550"

    def __init__(self, irq: IrqLine, on_tx: Callable[[int], None]) -> None:
        self._irq = irq
        self._on_tx = on_tx
        self._rx = bytearray()
        self._ier = 0
        self._lcr = 0
        self._mcr = 0
        self._fcr = 0
        self._lsr_errors = 0
        self._msr = HOST_MODEM_LINES
        self._scr = 0
        self._divisor = RESET_DIVISOR
        self._thr_pending = False
        self.bytes_tx = 0
        self.bytes_rx = 0

    # -- host side -------------------------------------------------------

    def can_receive(self) -> bool:
        """Room for one more byte: RX FIFO not full, or RBR empty without FIFOs.

        Never in loopback mode, where the serial input is disconnected.
        """
        return not self._mcr & MCR_LOOP and len(self._rx) < self._rx_capacity()

    def receive_interrupt_enabled(self) -> bool:
        """IER.ERBFI: the guest's driver wants to hear about received bytes."""
        return bool(self._ier & IER_ERBFI)

    def receive(self, byte: int) -> None:
        """A byte from the host arrives at the receiver (call when ``can_receive``)."""
        self.bytes_rx += 1
        self._rx_put(byte & 0xFF)
        self._update_irq()

    # -- guest side ------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        dlab = self._lcr & LCR_DLAB
        if offset == UART_RBR:
            return self._divisor & 0xFF if dlab else self._read_rbr()
        if offset == UART_IER:
            return self._divisor >> 8 if dlab else self._ier
        if offset == UART_IIR:
            return self._read_iir()
        if offset == UART_LCR:
            return self._lcr
        if offset == UART_MCR:
            return self._mcr
        if offset == UART_LSR:
            return self._read_lsr()
        if offset == UART_MSR:
            return self._read_msr()
        if offset == UART_SCR:
            return self._scr
        return 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        dlab = self._lcr & LCR_DLAB
        if offset == UART_THR:
            if dlab:
                self._divisor = (self._divisor & 0xFF00) | value
            else:
                self._write_thr(value)
        elif offset == UART_IER:
            if dlab:
                self._divisor = (self._divisor & 0x00FF) | (value << 8)
            else:
                self._write_ier(value)
        elif offset == UART_FCR:
            self._write_fcr(value)
        elif offset == UART_LCR:
            self._lcr = value
        elif offset == UART_MCR:
            self._mcr = value & MCR_MASK
            self._set_modem_lines(self._modem_lines())
            self._update_irq()
        elif offset == UART_SCR:
            self._scr = value
        # LSR and MSR writes are factory-test features: ignored.

    # -- registers -------------------------------------------------------

    def _read_rbr(self) -> int:
        if not self._rx:
            return 0
        byte = self._rx.pop(0)
        self._update_irq()
        return byte

    def _read_iir(self) -> int:
        ident = self._interrupt_id()
        if ident == IIR_THR_EMPTY:
            self._thr_pending = False
            self._update_irq()
        return ident | (IIR_FIFOS_ENABLED if self._fcr & FCR_FIFO_ENABLE else 0)

    def _read_lsr(self) -> int:
        value = self._lsr()
        if self._lsr_errors:
            self._lsr_errors = 0
            self._update_irq()
        return value

    def _read_msr(self) -> int:
        value = self._msr
        if self._msr & MSR_DELTAS:
            self._msr &= MSR_LINES
            self._update_irq()
        return value

    def _write_thr(self, byte: int) -> None:
        self._thr_pending = False
        self._update_irq()
        if self._mcr & MCR_LOOP:
            self._rx_put(byte)
        else:
            self.bytes_tx += 1
            self._on_tx(byte)
        self._thr_pending = True
        self._update_irq()

    def _write_ier(self, value: int) -> None:
        changed = (self._ier ^ value) & IER_MASK
        self._ier = value & IER_MASK
        if changed & IER_ETBEI:
            # THR is always empty, so enabling ETBEI makes the interrupt pending.
            self._thr_pending = bool(self._ier & IER_ETBEI)
        self._update_irq()

    def _write_fcr(self, value: int) -> None:
        """FCR: bit 0 must be set for the other bits to take effect; changing
        it clears both FIFOs. There is never anything in the TX FIFO to reset."""
        enable = value & FCR_FIFO_ENABLE
        if enable != self._fcr & FCR_FIFO_ENABLE or value & FCR_RX_RESET:
            self._rx.clear()
        self._fcr = value & (FCR_FIFO_ENABLE | FCR_DMA_MODE | FCR_TRIGGER) if enable else 0
        self._update_irq()

    # -- internals -------------------------------------------------------

    def _rx_capacity(self) -> int:
        return FIFO_SIZE if self._fcr & FCR_FIFO_ENABLE else 1

    def _rx_put(self, byte: int) -> None:
        """Overrun: with FIFOs the new byte is lost; without, it replaces RBR."""
        if len(self._rx) < self._rx_capacity():
            self._rx.append(byte)
            return
        self._lsr_errors |= LSR_OE
        if not self._fcr & FCR_FIFO_ENABLE:
            self._rx[0] = byte

    def _lsr(self) -> int:
        return (LSR_DR if self._rx else 0) | LSR_THRE | LSR_TEMT | self._lsr_errors

    def _modem_lines(self) -> int:
        if not self._mcr & MCR_LOOP:
            return HOST_MODEM_LINES
        mcr = self._mcr
        return (
            (MSR_DSR if mcr & MCR_DTR else 0)
            | (MSR_CTS if mcr & MCR_RTS else 0)
            | (MSR_RI if mcr & MCR_OUT1 else 0)
            | (MSR_DCD if mcr & MCR_OUT2 else 0)
        )

    def _set_modem_lines(self, lines: int) -> None:
        old = self._msr & MSR_LINES
        deltas = ((old ^ lines) >> 4) & (MSR_DCTS | MSR_DDSR | MSR_DDCD)
        if old & MSR_RI and not lines & MSR_RI:
            deltas |= MSR_TERI  # trailing edge only
        self._msr = lines | (self._msr & MSR_DELTAS) | deltas

    def _interrupt_id(self) -> int:
        ier = self._ier
        if ier & IER_ELSI and self._lsr_errors & LSR_ERRORS:
            return IIR_LINE_STATUS
        if ier & IER_ERBFI and self._rx:
            if self._fcr & FCR_FIFO_ENABLE and len(self._rx) < self._trigger_level():
                return IIR_CHAR_TIMEOUT
            return IIR_RX_DATA
        if ier & IER_ETBEI and self._thr_pending:
            return IIR_THR_EMPTY
        if ier & IER_EDSSI and self._msr & MSR_DELTAS:
            return IIR_MODEM_STATUS
        return IIR_NO_INT

    def _trigger_level(self) -> int:
        return RX_TRIGGER_LEVELS[(self._fcr & FCR_TRIGGER) >> 6]

    def _update_irq(self) -> None:
        self._irq.set_level(self._interrupt_id() != IIR_NO_INT)

    # -- state -----------------------------------------------------------

    def save_state(self) -> dict[str, Any]:
        return {
            "rx": bytes(self._rx),
            "ier": self._ier,
            "lcr": self._lcr,
            "mcr": self._mcr,
            "fcr": self._fcr,
            "lsr_errors": self._lsr_errors,
            "msr": self._msr,
            "scr": self._scr,
            "divisor": self._divisor,
            "thr_pending": self._thr_pending,
            "bytes_tx": self.bytes_tx,
            "bytes_rx": self.bytes_rx,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._rx = bytearray(state["rx"])
        self._ier = state["ier"]
        self._lcr = state["lcr"]
        self._mcr = state["mcr"]
        self._fcr = state["fcr"]
        self._lsr_errors = state["lsr_errors"]
        self._msr = state["msr"]
        self._scr = state["scr"]
        self._divisor = state["divisor"]
        self._thr_pending = state["thr_pending"]
        self.bytes_tx = state["bytes_tx"]
        self.bytes_rx = state["bytes_rx"]
        self._update_irq()

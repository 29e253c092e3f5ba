"""Intel 8259A programmable interrupt controllers, cascaded as on the PC/AT.

Follows the Intel 8259A datasheet (order no. 231468): the initialization
sequence ICW1-ICW4, operation command words OCW1-OCW3, fully nested priority
with rotation, edge and level (LTIM) triggering, auto-EOI, poll, special
mask and special fully nested modes. The slave's INT output drives the
master's IR2; an INTA cycle (:meth:`Pic8259Pair.acknowledge`) returns the
vector and updates IRR/ISR of both chips the way QEMU's hw/intc/i8259.c does,
including the spurious IRQ 7 (nothing pending) and IRQ 15 (the slave has
nothing for a master IR2 request; the master's IR2 still goes in service, as
on real hardware, and needs an EOI).

Details worth knowing:
- Edge mode latches a rising edge into IRR until acknowledged, even if the
  line falls first (``IrqLine.pulse`` relies on it). The datasheet would make
  such a request a spurious IRQ 7; QEMU latches too.
- ICW1 resets the edge sense circuit: a line already high must fall and rise
  again to request an interrupt in edge mode.
- Only 8086 mode is modelled: the vector is ICW2 & 0xF8 | IR (MCS-80 CALL
  sequences and buffered mode are not). SNGL is accepted; the cascade wiring
  stays in place.
- The Edge/Level Control Registers of PIIX-style chipsets (ports 0x4D0/0x4D1)
  are the separate :class:`Elcr` device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replayvm.devices.base import ByteDevice, IrqLine

PIC_COMMAND = 0  # ICW1, OCW2, OCW3 (write); IRR/ISR/poll (read)
PIC_DATA = 1  # ICW2-ICW4, OCW1 = IMR
PIC_WINDOW = 2

ICW1_IC4 = 0x01  # ICW4 needed
ICW1_SNGL = 0x02  # single 8259, no ICW3
ICW1_LTIM = 0x08  # level triggered mode
ICW1_INIT = 0x10  # a command-port write with this bit is ICW1
ICW2_VECTOR_MASK = 0xF8
ICW4_AEOI = 0x02  # automatic end of interrupt
ICW4_SFNM = 0x10  # special fully nested mode

OCW3_SELECT = 0x08  # a command-port write without ICW1_INIT: OCW3 if set, else OCW2
OCW3_RIS = 0x01  # read ISR (else IRR) ...
OCW3_RR = 0x02  # ... if this bit is set
OCW3_POLL = 0x04
OCW3_SMM = 0x20  # special mask mode ...
OCW3_ESMM = 0x40  # ... changed only if this bit is set

# OCW2 bits 7-5 (R, SL, EOI).
OCW2_ROTATE_AEOI_CLEAR = 0
OCW2_NONSPECIFIC_EOI = 1
OCW2_NOP = 2
OCW2_SPECIFIC_EOI = 3
OCW2_ROTATE_AEOI_SET = 4
OCW2_ROTATE_NONSPECIFIC_EOI = 5
OCW2_SET_PRIORITY = 6
OCW2_ROTATE_SPECIFIC_EOI = 7
OCW2_LEVEL_MASK = 0x07

POLL_INTERRUPT = 0x80  # poll word: an interrupt is pending, IR in bits 2-0

CASCADE_IR = 2  # master input wired to the slave's INT output
SPURIOUS_IR = 7
NO_PRIORITY = 8

# Operational mode, or the ICW the data port expects next.
_READY, _ICW2, _ICW3, _ICW4 = range(4)

ELCR_MASTER_MASK = 0xF8  # IRQ0-2 are always edge triggered
ELCR_SLAVE_MASK = 0xDE  # IRQ8 and IRQ13 are always edge triggered
ELCR_WINDOW = 2

_STATE_FIELDS = (
    "irr", "isr", "imr", "levels", "elcr", "step", "icw4_needed", "single", "ltim",
    "vector_base", "auto_eoi", "rotate_on_aeoi", "sfnm", "read_isr", "poll",
    "special_mask", "priority_base",
)  # fmt: skip


class Pic8259(ByteDevice):
    """One 8259A: a 2-port window (command at offset 0, data at offset 1).

    Each chip saves its own state; :class:`Pic8259Pair` saves both at once.
    """

    def __init__(self, name: str, is_master: bool, output: Callable[[bool], None] | None = None) -> None:
        self.name = name
        self._is_master = is_master
        self._output = output
        self.levels = 0  # input line levels, for edge detection
        self.elcr = 0
        self._reset_for_init(ltim=False)
        self.step = _READY
        self.icw4_needed = False
        self.single = False

    def _reset_for_init(self, ltim: bool) -> None:
        """What ICW1 clears (datasheet, "Initialization Command Words")."""
        self.ltim = ltim
        self.irr = self.levels & self._level_triggered()
        self.isr = 0
        self.imr = 0
        self.vector_base = 0
        self.auto_eoi = False
        self.rotate_on_aeoi = False
        self.sfnm = False
        self.read_isr = False
        self.poll = False
        self.special_mask = False
        self.priority_base = 0  # the IR with the highest priority

    # -- inputs and INTA -------------------------------------------------

    def set_input(self, ir: int, level: bool) -> None:
        bit = 1 << ir
        if bool(self.levels & bit) == level:
            return
        if level:
            self.levels |= bit
            self.irr |= bit
        else:
            self.levels &= ~bit
            if self._level_triggered() & bit:
                self.irr &= ~bit
        self._update()

    def pending(self) -> int | None:
        """The IR to signal on INT: the highest-priority unmasked request that
        beats everything in service (in special mask mode, masked in-service
        levels do not block; in SFNM the master ignores its in-service IR2)."""
        priority = self._priority(self.irr & ~self.imr)
        if priority == NO_PRIORITY:
            return None
        in_service = self.isr
        if self.special_mask:
            in_service &= ~self.imr
        if self.sfnm and self._is_master:
            in_service &= ~(1 << CASCADE_IR)
        if priority < self._priority(in_service):
            return (priority + self.priority_base) & 7
        return None

    def intack(self, ir: int) -> None:
        bit = 1 << ir
        if self.auto_eoi:
            if self.rotate_on_aeoi:
                self.priority_base = (ir + 1) & 7
        else:
            self.isr |= bit
        if not self._level_triggered() & bit:
            self.irr &= ~bit
        self._update()

    def set_elcr(self, value: int) -> None:
        self.elcr = value & (ELCR_MASTER_MASK if self._is_master else ELCR_SLAVE_MASK)
        level = self._level_triggered()
        self.irr = (self.irr & ~level) | (self.levels & level)
        self._update()

    # -- registers -------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        if offset not in (PIC_COMMAND, PIC_DATA):
            return 0xFF
        if self.poll:
            self.poll = False
            ir = self.pending()
            if ir is None:
                return 0
            self.intack(ir)
            return POLL_INTERRUPT | ir
        if offset == PIC_DATA:
            return self.imr
        return self.isr if self.read_isr else self.irr

    def write_byte(self, offset: int, value: int) -> None:
        if offset == PIC_COMMAND:
            if value & ICW1_INIT:
                self._write_icw1(value)
            elif value & OCW3_SELECT:
                self._write_ocw3(value)
            else:
                self._write_ocw2(value)
        elif offset == PIC_DATA:
            self._write_data(value)

    def _write_icw1(self, value: int) -> None:
        self._reset_for_init(ltim=bool(value & ICW1_LTIM))
        self.icw4_needed = bool(value & ICW1_IC4)
        self.single = bool(value & ICW1_SNGL)
        self.step = _ICW2
        self._update()

    def _write_data(self, value: int) -> None:
        if self.step == _READY:
            self.imr = value  # OCW1
            self._update()
        elif self.step == _ICW2:
            self.vector_base = value & ICW2_VECTOR_MASK
            self.step = self._after_icw3() if self.single else _ICW3
        elif self.step == _ICW3:
            self.step = self._after_icw3()  # cascade wiring is fixed
        else:
            self.auto_eoi = bool(value & ICW4_AEOI)
            self.sfnm = bool(value & ICW4_SFNM)
            self.step = _READY

    def _after_icw3(self) -> int:
        return _ICW4 if self.icw4_needed else _READY

    def _write_ocw2(self, value: int) -> None:
        command = value >> 5
        level = value & OCW2_LEVEL_MASK
        if command in (OCW2_ROTATE_AEOI_CLEAR, OCW2_ROTATE_AEOI_SET):
            self.rotate_on_aeoi = command == OCW2_ROTATE_AEOI_SET
        elif command in (OCW2_NONSPECIFIC_EOI, OCW2_ROTATE_NONSPECIFIC_EOI):
            priority = self._priority(self.isr)
            if priority != NO_PRIORITY:
                ir = (priority + self.priority_base) & 7
                self.isr &= ~(1 << ir)
                if command == OCW2_ROTATE_NONSPECIFIC_EOI:
                    self.priority_base = (ir + 1) & 7
        elif command in (OCW2_SPECIFIC_EOI, OCW2_ROTATE_SPECIFIC_EOI):
            self.isr &= ~(1 << level)
            if command == OCW2_ROTATE_SPECIFIC_EOI:
                self.priority_base = (level + 1) & 7
        elif command == OCW2_SET_PRIORITY:
            self.priority_base = (level + 1) & 7
        self._update()

    def _write_ocw3(self, value: int) -> None:
        if value & OCW3_POLL:
            self.poll = True
        if value & OCW3_RR:
            self.read_isr = bool(value & OCW3_RIS)
        if value & OCW3_ESMM:
            self.special_mask = bool(value & OCW3_SMM)
            self._update()

    # -- internals -------------------------------------------------------

    def _level_triggered(self) -> int:
        return 0xFF if self.ltim else self.elcr

    def _priority(self, mask: int) -> int:
        """Priority (0 = highest) of the best IR in ``mask``, or NO_PRIORITY."""
        for priority in range(8):
            if mask & (1 << ((priority + self.priority_base) & 7)):
                return priority
        return NO_PRIORITY

    def _update(self) -> None:
        if self._output is not None:
            self._output(self.pending() is not None)

    def save_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    def load_state(self, state: dict[str, Any]) -> None:
        for name in _STATE_FIELDS:
            setattr(self, name, state[name])
        self._update()


class Pic8259Pair:
    """The PC/AT pair: master at 0x20-0x21 (IRQ0-7), slave at 0xA0-0xA1
    (IRQ8-15) on the master's IR2.

    ``irq_line(n)`` gives the wire for IRQ n. Line 2 is the cascade wire,
    driven by the slave; devices must not be connected to it.
    """

    def __init__(self) -> None:
        self._lines = [IrqLine(f"irq{n}") for n in range(16)]
        self.master = Pic8259("pic8259-master", is_master=True)
        self.slave = Pic8259("pic8259-slave", is_master=False, output=self._lines[CASCADE_IR].set_level)
        for n, line in enumerate(self._lines):
            chip = self.master if n < 8 else self.slave
            line.connect(lambda level, chip=chip, ir=n & 7: chip.set_input(ir, level))

    def irq_line(self, n: int) -> IrqLine:
        return self._lines[n]

    def has_interrupt(self) -> bool:
        """The master's INT output to the CPU's INTR pin."""
        return self.master.pending() is not None

    def acknowledge(self) -> int:
        """The INTA cycle: the vector to deliver (call when the CPU takes INTR)."""
        ir = self.master.pending()
        if ir is None:
            return self.master.vector_base | SPURIOUS_IR
        if ir == CASCADE_IR:
            slave_ir = self.slave.pending()
            if slave_ir is None:
                vector = self.slave.vector_base | SPURIOUS_IR
            else:
                self.slave.intack(slave_ir)
                vector = self.slave.vector_base | slave_ir
        else:
            vector = self.master.vector_base | ir
        self.master.intack(ir)
        return vector

    def save_state(self) -> dict[str, Any]:
        master, slave = self.master.save_state(), self.slave.save_state()
        return {name: [master[name], slave[name]] for name in _STATE_FIELDS}

    def load_state(self, state: dict[str, Any]) -> None:
        self.master.load_state({name: state[name][0] for name in _STATE_FIELDS})
        self.slave.load_state({name: state[name][1] for name in _STATE_FIELDS})


class Elcr(ByteDevice):
    """Edge/Level Control Registers (Intel PIIX/ICH datasheets, "ELCR1/ELCR2"):
    offset 0 (port 0x4D0) for IRQ0-7, offset 1 (0x4D1) for IRQ8-15; a set bit
    makes that IRQ level triggered. Its state lives in the pair's state."""

    name = "elcr"

    def __init__(self, pair: Pic8259Pair) -> None:
        self._chips = (pair.master, pair.slave)

    def read_byte(self, offset: int) -> int:
        return self._chips[offset].elcr if offset < ELCR_WINDOW else 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        if offset < ELCR_WINDOW:
            self._chips[offset].set_elcr(value)

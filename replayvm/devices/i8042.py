"""Intel 8042 keyboard controller with a PS/2 keyboard, as on the PC/AT (IBM
PC/AT Technical Reference, "Keyboard Controller"; command set and keyboard
replies as in QEMU's hw/input/pckbd.c and hw/input/ps2.c).

What a guest needs to find the controller, probe its ports and reboot the
machine: the status register, the command byte (0x20/0x60), self tests,
port enable/disable, the output port (0xD0/0xD1) and the pulse commands
0xF0-0xFF, of which 0xFE pulses the reset line (``on_reset``, as does
clearing output port bit 0 with 0xD1).

Every probe gets an answer at once, because a guest driver that waits for
one busy-waits: Linux's i8042 driver spins up to 0.5 s of virtual time --
half a billion instructions here -- per unanswered command.

* Keyboard port: a PS/2 keyboard that never has a key pressed. It answers
  its command set like QEMU's (ACK 0xFA, GET ID 0xAB 0x41 translated /
  0xAB 0x83 raw, reset 0xAA, echo, resend 0xFE for unknown bytes), so Linux
  finds "AT Translated Set 2 keyboard" as it does on QEMU.
* AUX port: the controller side of a PS/2 AUX port with nothing plugged in.
  The controller's own AUX commands work (0xA7/0xA8 disable/enable, 0xA9
  test, 0xD3 loopback, which Linux uses to find the port and test IRQ12),
  and a byte sent to the absent mouse (0xD4) gets the controller's timeout
  reply: 0xFE with the TIMEOUT status bit.
* Replies queue in the output buffer; the head byte raises IRQ1 (keyboard)
  or IRQ12 (AUX) while the command byte enables that interrupt, as QEMU's
  kbd_update_irq does. The lines are optional (a test may pass none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replayvm.devices.base import ByteDevice, IrqLine

I8042_DATA = 0  # port 0x60
I8042_COMMAND = 4  # port 0x64: command (write), status (read)

STATUS_OBF = 0x01  # output buffer full
STATUS_IBF = 0x02  # input buffer full (never: commands complete at once)
STATUS_SYS = 0x04  # system flag, from the command byte
STATUS_CMD = 0x08  # the last write went to the command port
STATUS_UNLOCKED = 0x10  # keyboard not inhibited by the key lock
STATUS_AUXDATA = 0x20  # the output buffer holds a byte from the AUX port
STATUS_TIMEOUT = 0x40  # the device did not answer

CTR_KBD_INT = 0x01
CTR_AUX_INT = 0x02
CTR_SYS = 0x04
CTR_KBD_DISABLE = 0x10
CTR_AUX_DISABLE = 0x20
CTR_TRANSLATE = 0x40
CTR_RESET = CTR_KBD_INT | CTR_SYS | CTR_TRANSLATE  # as firmware leaves it after POST

CMD_READ_CTR = 0x20
CMD_WRITE_CTR = 0x60
CMD_AUX_DISABLE = 0xA7
CMD_AUX_ENABLE = 0xA8
CMD_AUX_TEST = 0xA9
CMD_SELF_TEST = 0xAA
CMD_KBD_TEST = 0xAB
CMD_KBD_DISABLE = 0xAD
CMD_KBD_ENABLE = 0xAE
CMD_READ_OUTPUT_PORT = 0xD0
CMD_WRITE_OUTPUT_PORT = 0xD1
CMD_WRITE_KBD_OBUF = 0xD2
CMD_WRITE_AUX_OBUF = 0xD3  # AUX loopback
CMD_WRITE_AUX = 0xD4  # the next data byte goes to the AUX device
CMD_PULSE_OUTPUT_PORT = 0xF0  # 0xF0-0xFF: pulse the port bits 3-0 that are clear
CMD_SYSTEM_RESET = 0xFE  # the pulse of bit 0 alone

SELF_TEST_OK = 0x55
KBD_TEST_OK = 0x00
AUX_TEST_OK = 0x00

OUTPUT_RESET = 0x01  # low = system reset
OUTPUT_A20 = 0x02
OUTPUT_PORT_RESET = 0xCF  # reset high, A20 on, the unused lines high (QEMU)

# PS/2 keyboard commands and replies (QEMU hw/input/ps2.c; IBM PS/2 Technical Reference).
KBD_CMD_SET_LEDS = 0xED
KBD_CMD_ECHO = 0xEE
KBD_CMD_SCANCODE = 0xF0
KBD_CMD_GET_ID = 0xF2
KBD_CMD_SET_RATE = 0xF3
KBD_CMD_ENABLE = 0xF4
KBD_CMD_RESET_DISABLE = 0xF5
KBD_CMD_RESET_ENABLE = 0xF6
KBD_CMD_RESET = 0xFF
KBD_ACKED = frozenset({KBD_CMD_ENABLE, KBD_CMD_RESET_DISABLE, KBD_CMD_RESET_ENABLE, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB})
KBD_REPLY_ACK = 0xFA
KBD_REPLY_POR = 0xAA  # power-on reset passed
KBD_REPLY_ID = 0xAB
KBD_ID_TRANSLATED = 0x41
KBD_ID_RAW = 0x83
KBD_REPLY_RESEND = 0xFE
AUX_NO_DEVICE = 0xFE  # what the controller returns when the AUX device does not answer
OUTPUT_QUEUE_MAX = 16  # QEMU's PS/2 queue is 16 bytes; more is a confused guest

# (byte, flags): flags are the status bits that come with it (AUXDATA, TIMEOUT).
Reply = tuple[int, int]


class I8042(ByteDevice):
    """The controller: data at offset 0 (port 0x60), command/status at 4 (0x64)."""

    name = "i8042"

    def __init__(
        self, on_reset: Callable[[], None], kbd_irq: IrqLine | None = None, aux_irq: IrqLine | None = None
    ) -> None:
        self._on_reset = on_reset
        self._kbd_irq = kbd_irq
        self._aux_irq = aux_irq
        self._ctr = CTR_RESET
        self._output_port = OUTPUT_PORT_RESET
        self._queue: list[Reply] = []
        self._pending = 0  # controller command waiting for its data byte, or 0
        self._kbd_pending = 0  # keyboard command waiting for its parameter, or 0
        self._scancode_set = 2
        self._last_was_command = False

    def read_byte(self, offset: int) -> int:
        if offset == I8042_DATA:
            if not self._queue:
                return 0  # QEMU returns the last byte again; nothing sane reads an empty buffer
            byte, _ = self._queue.pop(0)
            # The next byte moves into the output buffer: a new edge for the PIC.
            for line in (self._kbd_irq, self._aux_irq):
                if line is not None:
                    line.lower()
            self._update_irq()
            return byte
        if offset == I8042_COMMAND:
            status = STATUS_UNLOCKED
            if self._queue:
                status |= STATUS_OBF | self._queue[0][1]
            if self._ctr & CTR_SYS:
                status |= STATUS_SYS
            if self._last_was_command:
                status |= STATUS_CMD
            return status
        return 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        if offset == I8042_DATA:
            self._last_was_command = False
            self._write_data(value)
        elif offset == I8042_COMMAND:
            self._last_was_command = True
            self._write_command(value)
        self._update_irq()

    def _write_command(self, command: int) -> None:
        self._pending = 0
        if command == CMD_READ_CTR:
            self._respond(self._ctr)
        elif command in (CMD_WRITE_CTR, CMD_WRITE_OUTPUT_PORT, CMD_WRITE_KBD_OBUF, CMD_WRITE_AUX_OBUF, CMD_WRITE_AUX):
            self._pending = command
        elif command == CMD_SELF_TEST:
            self._respond(SELF_TEST_OK)
        elif command == CMD_KBD_TEST:
            self._respond(KBD_TEST_OK)
        elif command == CMD_AUX_TEST:
            self._respond(AUX_TEST_OK)
        elif command == CMD_KBD_DISABLE:
            self._ctr |= CTR_KBD_DISABLE
        elif command == CMD_KBD_ENABLE:
            self._ctr &= ~CTR_KBD_DISABLE
        elif command == CMD_AUX_DISABLE:
            self._ctr |= CTR_AUX_DISABLE
        elif command == CMD_AUX_ENABLE:
            self._ctr &= ~CTR_AUX_DISABLE
        elif command == CMD_READ_OUTPUT_PORT:
            self._respond(self._output_port)
        elif command >= CMD_PULSE_OUTPUT_PORT and not command & OUTPUT_RESET:
            self._on_reset()

    def _write_data(self, value: int) -> None:
        command, self._pending = self._pending, 0
        if command == CMD_WRITE_CTR:
            self._ctr = value
        elif command == CMD_WRITE_OUTPUT_PORT:
            self._output_port = value
            if not value & OUTPUT_RESET:
                self._on_reset()
        elif command == CMD_WRITE_KBD_OBUF:
            self._respond(value)
        elif command == CMD_WRITE_AUX_OBUF:
            self._respond(value, STATUS_AUXDATA)
        elif command == CMD_WRITE_AUX:
            self._respond(AUX_NO_DEVICE, STATUS_AUXDATA | STATUS_TIMEOUT)  # no mouse is plugged in
        else:
            self._ctr &= ~CTR_KBD_DISABLE  # sending to the keyboard enables its interface (QEMU)
            self._keyboard(value)

    def _keyboard(self, value: int) -> None:
        """A byte for the PS/2 keyboard (QEMU's ps2_write_keyboard)."""
        command, self._kbd_pending = self._kbd_pending, 0
        if command == KBD_CMD_SCANCODE:
            if value == 0:
                self._respond(KBD_REPLY_ACK)
                self._respond(self._scancode_set)
            elif value in (1, 2, 3):
                self._scancode_set = value
                self._respond(KBD_REPLY_ACK)
            else:
                self._respond(KBD_REPLY_RESEND)
            return
        if command in (KBD_CMD_SET_LEDS, KBD_CMD_SET_RATE):
            self._respond(KBD_REPLY_ACK)
            return
        if value in (KBD_CMD_SET_LEDS, KBD_CMD_SET_RATE, KBD_CMD_SCANCODE):
            self._kbd_pending = value
            self._respond(KBD_REPLY_ACK)
        elif value == KBD_CMD_ECHO:
            self._respond(KBD_CMD_ECHO)
        elif value == KBD_CMD_GET_ID:
            self._respond(KBD_REPLY_ACK)
            self._respond(KBD_REPLY_ID)
            self._respond(KBD_ID_TRANSLATED if self._ctr & CTR_TRANSLATE else KBD_ID_RAW)
        elif value == KBD_CMD_RESET:
            self._scancode_set = 2
            self._respond(KBD_REPLY_ACK)
            self._respond(KBD_REPLY_POR)
        elif value in KBD_ACKED:
            self._respond(KBD_REPLY_ACK)
        else:
            self._respond(KBD_REPLY_RESEND)

    def _respond(self, value: int, flags: int = 0) -> None:
        if len(self._queue) < OUTPUT_QUEUE_MAX:
            self._queue.append((value & 0xFF, flags))

    def _update_irq(self) -> None:
        head = self._queue[0][1] if self._queue else None
        if self._kbd_irq is not None:
            self._kbd_irq.set_level(head is not None and not head & STATUS_AUXDATA and bool(self._ctr & CTR_KBD_INT))
        if self._aux_irq is not None:
            self._aux_irq.set_level(head is not None and bool(head & STATUS_AUXDATA) and bool(self._ctr & CTR_AUX_INT))

    def save_state(self) -> dict[str, Any]:
        return {
            "ctr": self._ctr,
            "output_port": self._output_port,
            "queue": [list(r) for r in self._queue],
            "pending": self._pending,
            "kbd_pending": self._kbd_pending,
            "scancode_set": self._scancode_set,
            "last_was_command": self._last_was_command,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._ctr = state["ctr"]
        self._output_port = state["output_port"]
        self._queue = [(int(b), int(f)) for b, f in state["queue"]]
        self._pending = state["pending"]
        self._kbd_pending = state["kbd_pending"]
        self._scancode_set = state["scancode_set"]
        self._last_was_command = state["last_was_command"]
        self._update_irq()

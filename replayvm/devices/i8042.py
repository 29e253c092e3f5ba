"""Intel 8042 keyboard controller, as on the PC/AT (IBM PC/AT Technical
Reference, "Keyboard Controller"; command set as in QEMU's hw/input/pckbd.c).

Only what a guest needs to find the controller and to reboot the machine:
the status register, the command byte (0x20/0x60), self tests, keyboard
port enable/disable, the output port (0xD0/0xD1), and the output-port pulse
commands 0xF0-0xFF, of which 0xFE pulses the reset line. Clearing output
port bit 0 (command 0xD1) or pulsing it calls ``on_reset``.

No keyboard is attached: no scan codes ever arrive, and bytes the guest
sends to the keyboard are dropped (the guest's driver times out waiting for
an ACK). There is no auxiliary (mouse) port: like an AT-class controller,
the AUX commands (0xA7-0xA9, 0xD3, 0xD4) are ignored, so Linux decides the
port is absent. Commands are processed at once, so the input buffer is
never full. Without an IRQ line, command responses raise no IRQ1; guests
poll the status register for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replayvm.devices.base import ByteDevice

I8042_DATA = 0  # port 0x60
I8042_COMMAND = 4  # port 0x64: command (write), status (read)

STATUS_OBF = 0x01  # output buffer full
STATUS_IBF = 0x02  # input buffer full (never: commands complete at once)
STATUS_SYS = 0x04  # system flag, from the command byte
STATUS_CMD = 0x08  # the last write went to the command port
STATUS_UNLOCKED = 0x10  # keyboard not inhibited by the key lock

CTR_KBD_INT = 0x01
CTR_SYS = 0x04
CTR_KBD_DISABLE = 0x10
CTR_TRANSLATE = 0x40
CTR_RESET = CTR_KBD_INT | CTR_SYS | CTR_TRANSLATE  # as firmware leaves it after POST

CMD_READ_CTR = 0x20
CMD_WRITE_CTR = 0x60
CMD_SELF_TEST = 0xAA
CMD_KBD_TEST = 0xAB
CMD_KBD_DISABLE = 0xAD
CMD_KBD_ENABLE = 0xAE
CMD_READ_OUTPUT_PORT = 0xD0
CMD_WRITE_OUTPUT_PORT = 0xD1
CMD_PULSE_OUTPUT_PORT = 0xF0  # 0xF0-0xFF: pulse the port bits 3-0 that are clear
CMD_SYSTEM_RESET = 0xFE  # the pulse of bit 0 alone

SELF_TEST_OK = 0x55
KBD_TEST_OK = 0x00

OUTPUT_RESET = 0x01  # low = system reset
OUTPUT_A20 = 0x02
OUTPUT_PORT_RESET = 0xCF  # reset high, A20 on, the unused lines high (QEMU)


class I8042(ByteDevice):
    """The controller: data at offset 0 (port 0x60), command/status at 4 (0x64)."""

    name = "i8042"

    def __init__(self, on_reset: Callable[[], None]) -> None:
        self._on_reset = on_reset
        self._ctr = CTR_RESET
        self._output_port = OUTPUT_PORT_RESET
        self._out_byte = 0
        self._out_full = False
        self._pending = 0  # command waiting for its data byte, or 0
        self._last_was_command = False

    def read_byte(self, offset: int) -> int:
        if offset == I8042_DATA:
            self._out_full = False
            return self._out_byte
        if offset == I8042_COMMAND:
            return (
                (STATUS_OBF if self._out_full else 0)
                | (STATUS_SYS if self._ctr & CTR_SYS else 0)
                | (STATUS_CMD if self._last_was_command else 0)
                | STATUS_UNLOCKED
            )
        return 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        if offset == I8042_DATA:
            self._last_was_command = False
            self._write_data(value)
        elif offset == I8042_COMMAND:
            self._last_was_command = True
            self._write_command(value)

    def _write_command(self, command: int) -> None:
        self._pending = 0
        if command == CMD_READ_CTR:
            self._respond(self._ctr)
        elif command in (CMD_WRITE_CTR, CMD_WRITE_OUTPUT_PORT):
            self._pending = command
        elif command == CMD_SELF_TEST:
            self._respond(SELF_TEST_OK)
        elif command == CMD_KBD_TEST:
            self._respond(KBD_TEST_OK)
        elif command == CMD_KBD_DISABLE:
            self._ctr |= CTR_KBD_DISABLE
        elif command == CMD_KBD_ENABLE:
            self._ctr &= ~CTR_KBD_DISABLE
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
        # Otherwise the byte is for the keyboard, and there is none.

    def _respond(self, value: int) -> None:
        self._out_byte = value
        self._out_full = True

    def save_state(self) -> dict[str, Any]:
        return {
            "ctr": self._ctr,
            "output_port": self._output_port,
            "out_byte": self._out_byte,
            "out_full": self._out_full,
            "pending": self._pending,
            "last_was_command": self._last_was_command,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._ctr = state["ctr"]
        self._output_port = state["output_port"]
        self._out_byte = state["out_byte"]
        self._out_full = state["out_full"]
        self._pending = state["pending"]
        self._last_was_command = state["last_was_command"]

"""The PC POST-code port 0x80 (IBM PC/AT: BIOS progress codes on a diagnostic card).

Writes are the guest's way to mark phases of its run: the machine counts VM
exits per phase for `replayvm stats`. QEMU ignores this port, so guests that
use it print the same on both. It holds the last code written and reads it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replayvm.devices.base import ByteDevice


class PostCodePort(ByteDevice):
    name = "post"

    def __init__(self, on_code: Callable[[int], None]) -> None:
        self._on_code = on_code
        self.code = 0

    def read_byte(self, offset: int) -> int:
        return self.code

    def write_byte(self, offset: int, value: int) -> None:
        self.code = value & 0xFF
        self._on_code(self.code)

    def save_state(self) -> dict[str, Any]:
        return {"code": self.code}

    def load_state(self, state: dict[str, Any]) -> None:
        self.code = int(state["code"]) & 0xFF

"""Shared helpers for record/replay tests."""

from __future__ import annotations

from pathlib import Path

from replayvm.guests import catalog
from replayvm.host import BytesSource, Host
from replayvm.machine import MachineConfig, RunResult
from replayvm.session.recorder import Recorder


def record_guest(
    path: Path, name: str, *, cmdline: str | None = None, input_data: bytes | None = None, **kwargs: object
) -> tuple[RunResult, bytes]:
    guest = catalog.get(name)
    if input_data is None and guest.input_path is not None:
        input_data = guest.input_path.read_bytes()
    out = bytearray()
    recorder = Recorder(
        path,
        guest.image.read_bytes(),
        MachineConfig(64, guest.cmdline if cmdline is None else cmdline),
        host=Host(BytesSource(input_data) if input_data is not None else None),
        serial_out=out.extend,
        image_name=name,
        fsync=False,
        **kwargs,  # type: ignore[arg-type]
    )
    return recorder.run(), bytes(out)

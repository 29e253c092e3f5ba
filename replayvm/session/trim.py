"""`replayvm trim`: a smaller recording that starts near the interesting part.

The new file embeds the machine at the chosen icount (see :mod:`snapshot`)
and keeps only the events from there on, with the same END: it replays to the
same final state and digest without the history before its start.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from replayvm.log import Entropy, NetRx, RecordingWriter, SerialInput, Sync, WallClock
from replayvm.session.checkpoints import changed_pages
from replayvm.session.snapshot import RAM_BLOB, SNAPSHOT_BLOB, encode_ram, encode_snapshot
from replayvm.session.timeline import DebuggerError, DebugSession


def trim(source: str | Path, start: int, output: str | Path) -> int:
    """Write the trimmed recording; returns the icount it starts at."""
    session = DebugSession.open(source, checkpoint_interval=1 << 40)
    reader = session.replayer.reader
    booted = bytearray(session.machine.ram.view)  # what the replayer rebuilds by itself
    if reader.end is None:
        raise DebuggerError("only a complete recording can be trimmed")
    stop = session.seek(start)
    if stop.reason != "seek" or session.icount != start:
        raise DebuggerError(f"icount {start} is not inside the recording (it ends at {reader.end.icount})")
    replay_state = session.replayer.save_state()
    replay_state["sync_next"] = 0
    replay_state["host"] = dict(replay_state["host"], next=0, next_entropy=0, next_frame=0)  # type: ignore[call-overload]
    snapshot = encode_snapshot({"machine": session.machine.save_state(), "replay": replay_state})
    blobs = [(name, reader.blob(name)) for name in reader.blobs if name not in (SNAPSHOT_BLOB, RAM_BLOB)]
    ram = session.machine.ram
    booted_address = ctypes.addressof((ctypes.c_char * len(booted)).from_buffer(booted))
    changed = changed_pages(ram.address, booted_address, ram.size)
    blobs += [(SNAPSHOT_BLOB, snapshot), (RAM_BLOB, encode_ram(ram, changed))]
    config = dict(reader.header.config, trimmed_from=start)
    writer = RecordingWriter(output, config, blobs)
    for event in reader.events():
        # Inputs and SYNCs at `start` come after the snapshot's boundary; entropy
        # logged at `start` was read by instruction number `start`, before it.
        late = event.icount > start if isinstance(event, Entropy) else event.icount >= start
        if isinstance(event, WallClock) or (isinstance(event, (SerialInput, Sync, Entropy, NetRx)) and late):
            writer.append(event)
    for payload in reader.ancillary("r"):
        writer.append_ancillary("r", payload)
    writer.close(reader.end)
    return start

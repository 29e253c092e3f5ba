"""The recorder: runs a machine and logs every nondeterministic input.

Host input reaches the machine only through :class:`RecordingHost`, which
logs what passes on the way in, at the icount of the slice boundary where it
was delivered (DESIGN.md §1). Periodic SYNC records carry a digest of the
CPU and device state at exact icounts (multiples of the sync interval), so a
replay that drifts is caught near where it drifted; END carries the final
digest including RAM.

Crash safety: the header and kernel are on disk before the guest starts, and
event chunks are flushed (and fsynced) at least every second of host time,
so a recorder killed at any moment leaves a replayable prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from replayvm.host import Host, monotonic
from replayvm.log import FORMAT_VERSION, End, Entropy, Event, NetRx, RecordingWriter, SerialInput, Sync, WallClock
from replayvm.machine import Machine, MachineConfig, RunResult
from replayvm.session.recording import (
    DISK_BLOB,
    INITRD_BLOB,
    KERNEL_BLOB,
    NET_DEVICE,
    SERIAL_DEVICE,
    SYNC_INTERVAL,
    RecordedSession,
)

FLUSH_SECONDS = 1.0


class RecordingHost(Host):
    """A live host whose every answer is logged."""

    def __init__(self, live: Host, log: Callable[[Event], None]) -> None:
        super().__init__(live.serial, tunnel=live.tunnel)
        self._live = live
        self._log = log

    def wall_clock_ns(self) -> int:
        value = self._live.wall_clock_ns()
        self._log(WallClock(0, value))
        return value

    def entropy(self, icount: int, n: int) -> bytes:
        data = self._live.entropy(icount, n)
        self._log(Entropy(icount, data))
        return data

    def net_transmit(self, icount: int, frame: bytes) -> None:
        self._live.net_transmit(icount, frame)

    def net_peek(self, icount: int, timeout: float | None = 0.0) -> bytes | None:
        return self._live.net_peek(icount, timeout)

    def net_consume(self, icount: int) -> None:
        frame = self._live.net_peek(icount)
        assert frame is not None
        self._live.net_consume(icount)
        self._log(NetRx(icount, NET_DEVICE, frame))

    def net_more(self) -> bool:
        return self._live.net_more()

    def serial_input(self, icount: int, max_bytes: int, timeout: float | None = 0.0) -> bytes:
        data = self._live.serial_input(icount, max_bytes, timeout)
        if data:
            self._log(SerialInput(icount, SERIAL_DEVICE, data))
        return data

    def close(self) -> None:
        self._live.close()


class Recorder:
    def __init__(
        self,
        path: str | Path,
        image: bytes,
        config: MachineConfig,
        *,
        host: Host | None = None,
        serial_out: Callable[[bytes], None] | None = None,
        image_name: str = "image",
        sync_interval: int = SYNC_INTERVAL,
        fsync: bool = True,
        on_finish: Callable[[Machine, RunResult], dict[str, bytes]] | None = None,
        net_capture: Callable[[bytes, int], None] | None = None,
    ) -> None:
        config.validate()
        self.session = RecordedSession(config, image_name, sync_interval)
        self.on_finish = on_finish  # ancillary frames (tag -> payload) written before END
        blobs = [(KERNEL_BLOB, image)] + ([(INITRD_BLOB, config.initrd)] if config.initrd is not None else [])
        blobs += [(DISK_BLOB, config.disk)] if config.disk is not None else []
        self.writer = RecordingWriter(path, self.session.to_config(), blobs, fsync=fsync)
        self._last_flush = monotonic()
        self._last_sync = -1
        self.host = RecordingHost(host or Host(), self.writer.append)
        try:
            self.machine = Machine(
                config, image, host=self.host, serial_out=serial_out, image_name=image_name, net_capture=net_capture
            )
        except BaseException:
            self.writer.flush()
            raise

    # -- RunObserver -------------------------------------------------------------
    def next_stop(self, icount: int) -> int:
        interval = self.session.sync_interval
        return (icount // interval + 1) * interval

    def at_boundary(self, machine: Machine) -> None:
        icount = machine.vcpu.icount
        now = monotonic()
        flush = icount == 0 or now - self._last_flush >= FLUSH_SECONDS
        # Each flushed chunk ends with a SYNC: a replay of a killed recorder's
        # file can then run up to the flush point, not just its last input.
        if (flush or icount % self.session.sync_interval == 0) and icount != self._last_sync:
            self._last_sync = icount
            self.writer.append(Sync(icount, machine.vcpu.rip, machine.state_digest(ram=False)))
        if flush:
            self.writer.flush()
            self._last_flush = now

    # -- running -------------------------------------------------------------------
    def run(self, max_insns: int | None = None) -> RunResult:
        try:
            result = self.machine.run(max_insns, observer=self)
        except BaseException:
            self.writer.flush()  # keep what was recorded; the file reads as incomplete
            raise
        if self.on_finish is not None:
            for tag, payload in self.on_finish(self.machine, result).items():
                self.writer.append_ancillary(tag, payload)
        self.writer.close(end_record(self.machine, result))
        self.host.close()
        return result


def end_record(machine: Machine, result: RunResult, *, format_version: int = FORMAT_VERSION) -> End:
    """The END record of a run; its digest covers RAM as ``format_version`` says
    (version 1: every byte; from version 2: the chunks that are not zero)."""
    stats = {f"exits.{k}": int(v) for k, v in machine.vcpu.stats.by_reason.items()}
    stats.update(
        serial_out_crc32=machine.serial_out_crc, serial_out_bytes=machine.serial_out_bytes, idle_ns=machine.vcpu.idle_ns
    )
    return End(
        result.icount, result.reason, result.status, machine.state_digest(ram=True, full_ram=format_version < 2), stats
    )

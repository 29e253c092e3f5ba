"""The replayer: runs a recording's machine again, feeding back the log.

:class:`ReplayHost` answers the machine's host questions from the log, so
devices cannot tell a replay from the original run. Every SYNC record is
checked at its icount; the first mismatch is a :class:`DivergenceError`
naming the icount, the expected and actual RIP and digest, and the last
logged events before it. The replay needs no file but the recording.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from replayvm.errors import DivergenceError, ReplayVMError, TraceFormatError
from replayvm.host import Host, SerialSource
from replayvm.log import End, Entropy, Event, NetRx, RecordingReader, SerialInput, Sync, WallClock, kind_name
from replayvm.machine import Machine, RunResult
from replayvm.session.recorder import end_record
from replayvm.session.recording import DISK_BLOB, INITRD_BLOB, KERNEL_BLOB, SERIAL_DEVICE, RecordedSession
from replayvm.session.snapshot import RAM_BLOB, SNAPSHOT_BLOB, decode_snapshot, load_ram

HISTORY = 8  # events named in a divergence report
HOST_STOPS = frozenset({"max-insns", "interrupted"})


def describe(event: Event) -> str:
    detail = ""
    if isinstance(event, SerialInput):
        detail = f" {event.data!r}"
    elif isinstance(event, Sync):
        detail = f" rip={event.rip:#x}"
    elif isinstance(event, WallClock):
        detail = f" {event.unix_ns}"
    return f"@{event.icount} {kind_name(event)}{detail}"


class ReplayHost(Host):
    """Host answers taken from the log, at the icounts they were given."""

    def __init__(self, events: list[Event], history: deque[Event]) -> None:
        super().__init__(SerialSource())
        clocks = [e for e in events if isinstance(e, WallClock)]
        if len(clocks) != 1:
            raise TraceFormatError(f"expected one wall-clock record, found {len(clocks)}")
        self._wall = clocks[0].unix_ns
        self._inputs: list[SerialInput] = [e for e in events if isinstance(e, SerialInput)]
        self._entropy: list[Entropy] = [e for e in events if isinstance(e, Entropy)]
        self._next_entropy = 0
        self._frames: list[NetRx] = [e for e in events if isinstance(e, NetRx)]
        self._next_frame = 0
        self._next = 0  # index of the next input to deliver
        for e in self._inputs:
            if e.device != SERIAL_DEVICE:
                raise TraceFormatError(f"serial input for unknown device {e.device:#x}")
        self._pending = b""
        self._history = history
        self.horizon = 0  # icount up to which the recorded session went on
        self.icount: Callable[[], int] = lambda: 0

    def wall_clock_ns(self) -> int:
        return self._wall

    def serial_input(self, icount: int, max_bytes: int, timeout: float | None = 0.0) -> bytes:
        if not self._pending:
            if self._next >= len(self._inputs):
                return b""
            head = self._inputs[self._next]
            if head.icount > icount:
                return b""
            if head.icount < icount:
                raise DivergenceError(
                    f"replay diverged: input logged at icount {head.icount} was not taken "
                    f"(the guest is at icount {icount} and its UART never had room)"
                )
            self._next += 1
            self._history.append(head)
            self._pending = head.data
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    def net_transmit(self, icount: int, frame: bytes) -> None:
        pass  # a replay never touches the network

    def net_peek(self, icount: int, timeout: float | None = 0.0) -> bytes | None:
        if self._next_frame >= len(self._frames):
            return None
        head = self._frames[self._next_frame]
        if head.icount < icount:
            raise DivergenceError(
                f"replay diverged: a network frame logged at icount {head.icount} was not taken "
                f"(the guest is at icount {icount} and had no receive buffer)"
            )
        return head.frame if head.icount == icount else None

    def net_consume(self, icount: int) -> None:
        self._history.append(self._frames[self._next_frame])
        self._next_frame += 1

    def net_more(self) -> bool:
        return self._next_frame < len(self._frames) or self.icount() < self.horizon

    def next_input_icount(self) -> int | None:
        stops = []
        if not self._pending and self._next < len(self._inputs):
            stops.append(self._inputs[self._next].icount)
        if self._next_frame < len(self._frames):
            stops.append(self._frames[self._next_frame].icount)
        return min(stops) if stops else None

    def entropy(self, icount: int, n: int) -> bytes:
        if self._next_entropy >= len(self._entropy):
            raise DivergenceError(f"replay diverged: the guest asked for entropy at icount {icount}, none was logged")
        event = self._entropy[self._next_entropy]
        if event.icount != icount or len(event.data) != n:
            raise DivergenceError(
                f"replay diverged: entropy asked at icount {icount} for {n} bytes; "
                f"the log has {len(event.data)} bytes at icount {event.icount}"
            )
        self._next_entropy += 1
        self._history.append(event)
        return event.data

    def serial_more(self) -> bool:
        # The recorded host may have kept the line open after its last byte (the
        # guest idled, waiting): input counts as possible up to the recording's end.
        return bool(self._pending) or self._next < len(self._inputs) or self.icount() < self.horizon

    def serial_waiting(self) -> bool:
        # Logged input comes at its logged icount (next_input_icount ends the slice
        # there); only the rest of an input the receiver could not take at once waits.
        return bool(self._pending)

    def save_state(self) -> dict[str, object]:
        return {
            "next": self._next,
            "pending": self._pending,
            "next_entropy": self._next_entropy,
            "next_frame": self._next_frame,
        }

    def load_state(self, state: dict[str, object]) -> None:
        self._next = int(state["next"])  # type: ignore[call-overload]
        self._pending = bytes(state["pending"])  # type: ignore[call-overload]
        self._next_entropy = int(state["next_entropy"])  # type: ignore[call-overload]
        self._next_frame = int(state["next_frame"])  # type: ignore[call-overload]


@dataclass(slots=True)
class ReplayReport:
    result: RunResult
    complete: bool
    syncs_checked: int
    end: End | None
    verify_lines: list[str] = field(default_factory=list)


class Replayer:
    def __init__(
        self,
        path: str | Path | bytes,
        *,
        serial_out: Callable[[bytes], None] | None = None,
        verify: bool = False,
    ) -> None:
        self.reader = RecordingReader(path)
        self.session = RecordedSession.from_config(self.reader.header.config)
        if KERNEL_BLOB not in self.reader.blobs:
            raise TraceFormatError("the recording holds no kernel image")
        image = self.reader.blob(KERNEL_BLOB)
        if self.session.machine.initrd is not None:
            if INITRD_BLOB not in self.reader.blobs:
                raise TraceFormatError("the header says the machine had an initrd, but the recording holds none")
            machine = replace(self.session.machine, initrd=self.reader.blob(INITRD_BLOB))
            self.session = replace(self.session, machine=machine)
        if self.session.machine.disk is not None:
            if DISK_BLOB not in self.reader.blobs:
                raise TraceFormatError("the header says the machine had a disk, but the recording holds none")
            self.session = replace(
                self.session, machine=replace(self.session.machine, disk=self.reader.blob(DISK_BLOB))
            )
        events = list(self.reader.events())
        if not events and not self.reader.complete:
            raise TraceFormatError("the recording is incomplete and holds no complete event chunk: nothing to replay")
        self.complete = self.reader.complete
        self.end = self.reader.end
        self._syncs: list[Sync] = [e for e in events if isinstance(e, Sync)]
        self._sync_next = 0
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._all = events
        self.verify = verify
        # Where the recorded run was stopped from outside (Ctrl-C, --max-insns)
        # or where an incomplete file ends, the replay stops the same way.
        self._stop_at: tuple[int, str, int, str] | None = None
        if self.end is None:
            last = events[-1].icount
            self._stop_at = (last, "incomplete", 0, f"the recording ends at icount {last}")
        elif self.end.reason in HOST_STOPS:
            self._stop_at = (self.end.icount, self.end.reason, self.end.status, f"recorded run was {self.end.reason}")
        self.verify_lines: list[str] = []
        self.syncs_checked = 0
        self.host = ReplayHost(events, self._history)
        # Complete: the session ended at END (exclusive). Incomplete: it went on
        # past the last flushed SYNC, where the replay stops.
        if self.end is None:
            self.host.horizon = events[-1].icount + 1
        else:  # an "idle" end is the moment the recorded input ran dry
            self.host.horizon = self.end.icount + (0 if self.end.reason == "idle" else 1)
        try:
            self.machine = Machine(
                self.session.machine, image, host=self.host, serial_out=serial_out, image_name=self.session.image_name
            )
        except ReplayVMError as e:
            raise TraceFormatError(f"the recorded machine cannot be built: {e}") from None
        vcpu = self.machine.vcpu
        self.host.icount = lambda: vcpu.icount
        if SNAPSHOT_BLOB in self.reader.blobs:
            self._start_from_snapshot()

    def _start_from_snapshot(self) -> None:
        """A trimmed recording: begin at its snapshot instead of at boot."""
        if RAM_BLOB not in self.reader.blobs:
            raise TraceFormatError("the recording has a snapshot but no RAM blob")
        template = {"machine": self.machine.save_state(), "replay": self.save_state()}
        state = decode_snapshot(self.reader.blob(SNAPSHOT_BLOB), template)
        load_ram(self.machine.ram, self.reader.blob(RAM_BLOB))
        try:
            self.machine.load_state(state["machine"])  # type: ignore[arg-type]
            self.load_state(state["replay"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, IndexError, AssertionError) as e:
            raise TraceFormatError(f"the snapshot does not fit this machine ({e})") from None

    # -- RunObserver -------------------------------------------------------------
    def next_stop(self, icount: int) -> int | None:
        stops = [self._syncs[self._sync_next].icount] if self._sync_next < len(self._syncs) else []
        if self._stop_at is not None:
            stops.append(self._stop_at[0])
        return min(stops) if stops else None

    def at_boundary(self, machine: Machine) -> None:
        icount = machine.vcpu.icount
        if self._stop_at is not None and icount >= self._stop_at[0]:
            machine.request_stop(*self._stop_at[1:])
        while self._sync_next < len(self._syncs) and self._syncs[self._sync_next].icount <= icount:
            sync = self._syncs[self._sync_next]
            self._sync_next += 1
            if sync.icount < icount:
                self._diverged(sync, icount, "the replay ran past this SYNC point")
            actual = machine.state_digest(ram=False)
            rip = machine.vcpu.rip
            ok = actual == sync.digest and rip == sync.rip
            if self.verify:
                self.verify_lines.append(
                    f"sync @{icount}: rip {rip:#x} digest {actual.hex()} {'ok' if ok else 'MISMATCH'}"
                )
            if not ok:
                self._diverged(sync, icount, f"actual RIP {rip:#x}, digest {actual.hex()}", rip)
            self._history.append(sync)
            self.syncs_checked += 1

    def save_state(self) -> dict[str, object]:
        return {"sync_next": self._sync_next, "host": self.host.save_state()}

    def load_state(self, state: dict[str, object]) -> None:
        self._sync_next = int(state["sync_next"])  # type: ignore[call-overload]
        self.host.load_state(state["host"])  # type: ignore[arg-type]

    def events(self) -> list[Event]:
        return self._all

    def history(self) -> list[Event]:
        """The last events replayed (for divergence reports)."""
        return list(self._history)

    def _diverged(self, sync: Sync, icount: int, actual: str, rip: int | None = None) -> None:
        last = "; ".join(describe(e) for e in self._history) or "none"
        raise DivergenceError(
            f"replay diverged at icount {sync.icount}: expected RIP {sync.rip:#x}, digest {sync.digest.hex()}; "
            f"{actual} (now at icount {icount}). Last events before it: {last}",
            icount=sync.icount,
            expected_rip=sync.rip,
            actual_rip=rip,
        )

    # -- running -------------------------------------------------------------------
    def run(self) -> ReplayReport:
        end = self.end
        result = self.machine.run(observer=self)
        if end is not None:
            self._check_end(end, result)
        elif self._sync_next < len(self._syncs):
            pending = self._syncs[self._sync_next].icount
            raise DivergenceError(f"replay stopped ({result.message}) before the SYNC at icount {pending}")
        self.host.close()
        return ReplayReport(result, end is not None, self.syncs_checked, end, self.verify_lines)

    def _check_end(self, end: End, result: RunResult) -> None:
        mine = end_record(self.machine, result, format_version=self.reader.header.format_version)
        problems = []
        if (mine.icount, mine.reason, mine.status) != (end.icount, end.reason, end.status):
            problems.append(
                f"ended at icount {mine.icount} ({mine.reason}, status {mine.status}), "
                f"recorded icount {end.icount} ({end.reason}, status {end.status})"
            )
        for key in ("serial_out_crc32", "serial_out_bytes"):
            if key in end.stats and end.stats[key] != mine.stats[key]:
                problems.append(f"guest output differs ({key} {mine.stats[key]} vs {end.stats[key]})")
        if mine.digest != end.digest:
            problems.append(f"final digest {mine.digest.hex()} vs recorded {end.digest.hex()}")
        if self.verify:
            self.verify_lines.append(
                f"end @{mine.icount}: digest {mine.digest.hex()} {'ok' if mine.digest == end.digest else 'MISMATCH'}"
            )
        if problems:
            last = "; ".join(describe(e) for e in self._history) or "none"
            raise DivergenceError(
                f"replay diverged at the end: {'; '.join(problems)}. Last events: {last}",
                icount=mine.icount,
                actual_rip=self.machine.vcpu.rip,
            )

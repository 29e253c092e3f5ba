"""The only door for host nondeterminism (DESIGN.md §1).

Everything the guest can observe that does not follow from its own
instructions enters here: serial input bytes, the wall-clock time at boot,
and later entropy and network frames. The machine calls a :class:`Host`
only at slice boundaries, so every value has an exact icount; a recorder
wraps a Host and logs what passes, a replayer is a Host that feeds the log
back. Devices never see this module: the machine hands them plain values.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO


class SerialSource:
    """Bytes for the guest's serial port."""

    eof = True
    interactive = False  # bytes may arrive later, in host time
    paced = False  # typed like a person: a line at a time, when the guest waits for it

    def read(self, max_bytes: int, timeout: float | None = 0.0) -> bytes:
        """Up to ``max_bytes`` bytes; waits up to ``timeout`` seconds (None: until
        data or EOF). Returns b"" when nothing arrived; sets ``eof`` at the end."""
        return b""

    def close(self) -> None:
        pass


class BytesSource(SerialSource):
    """Scripted input (``--input FILE``): all of it is available at once.

    ``paced`` (what ``--input`` uses) types it the way a person at a terminal
    would: one line at a time, only while the guest idles (HLT) with its
    receive interrupt enabled -- so a shell reads its commands at its prompt,
    not while the kernel boots and resets the UART (Linux clears the 16550's
    FIFO when it opens the console, losing anything typed before)."""

    def __init__(self, data: bytes, *, paced: bool = False) -> None:
        self._data = data
        self._pos = 0
        self.eof = not data
        self.paced = paced

    def read(self, max_bytes: int, timeout: float | None = 0.0) -> bytes:
        chunk = self._data[self._pos : self._pos + max_bytes]
        self._pos += len(chunk)
        self.eof = self._pos >= len(self._data)
        return chunk


class StreamSource(SerialSource):
    """A pipe or terminal: bytes arrive when they arrive (host nondeterminism)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._fd = stream.fileno()
        self.eof = False
        self.interactive = True
        self._pending = b""

    def read(self, max_bytes: int, timeout: float | None = 0.0) -> bytes:
        if self.eof:
            return b""
        if not self._pending:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return b""
            data = os.read(self._fd, 4096)
            if not data:
                self.eof = True
                return b""
            self._pending = data
        chunk, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return chunk


class TerminalSource(StreamSource):
    """An interactive terminal: keys go to the guest as typed (no line editing,
    no local echo, the guest echoes), while Ctrl-C still interrupts ReplayVM."""

    def __init__(self, stream: BinaryIO) -> None:
        import termios

        super().__init__(stream)
        self._termios = termios
        self._saved = termios.tcgetattr(self._fd)
        mode = termios.tcgetattr(self._fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflags; ISIG stays on
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, mode)

    def close(self) -> None:
        self._termios.tcsetattr(self._fd, self._termios.TCSADRAIN, self._saved)


class UdpTunnel:
    """A network back-end interoperable with QEMU's ``-netdev dgram``: each
    Ethernet frame is one UDP datagram between a local and a remote address."""

    MAX_FRAME = 65535
    MAX_PENDING = 1024  # frames queued for the guest; a flood beyond it is dropped

    def __init__(self, local: tuple[str, int], remote: tuple[str, int]) -> None:
        self.remote = remote
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(local)
        self.sock.setblocking(False)
        self.pending: deque[bytes] = deque()
        self.sent = self.received = self.dropped = 0

    def send(self, frame: bytes) -> None:
        try:
            self.sock.sendto(frame, self.remote)
            self.sent += 1
        except OSError:  # no peer yet, a full buffer: a lost frame, as on a real wire
            self.dropped += 1

    def poll(self, timeout: float | None = 0.0) -> None:
        if timeout and not self.pending:
            select.select([self.sock], [], [], timeout)
        while len(self.pending) < self.MAX_PENDING:
            try:
                frame = self.sock.recv(self.MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.received += 1
            self.pending.append(frame)

    def close(self) -> None:
        self.sock.close()


def parse_udp_tunnel(spec: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """``LOCALPORT:REMOTEHOST:REMOTEPORT`` (local address 127.0.0.1)."""
    try:
        local, rhost, rport = spec.split(":")
        return ("127.0.0.1", int(local)), (rhost, int(rport))
    except ValueError:
        raise ValueError(f"--net udp:{spec}: expected udp:LOCALPORT:REMOTEHOST:REMOTEPORT") from None


class Host:
    """Live host: real wall clock, real input."""

    def __init__(
        self,
        serial: SerialSource | None = None,
        wall_clock_ns: int | None = None,
        tunnel: UdpTunnel | None = None,
    ) -> None:
        self.serial = serial or SerialSource()
        self.tunnel = tunnel
        self._wall_clock_ns = wall_clock_ns  # fixed base, like QEMU's -rtc base=

    def wall_clock_ns(self) -> int:
        if self._wall_clock_ns is not None:
            return self._wall_clock_ns
        return time.time_ns()

    def serial_input(self, icount: int, max_bytes: int, timeout: float | None = 0.0) -> bytes:
        return self.serial.read(max_bytes, timeout)

    def serial_more(self) -> bool:
        """More serial input may still arrive."""
        return not self.serial.eof

    def serial_waiting(self) -> bool:
        """Input may be waiting for room in the receiver right now: the guest
        making room must end the slice, so the bytes go in at that icount."""
        return self.serial_more()

    @property
    def serial_interactive(self) -> bool:
        """Input arrives in host time (a pipe or terminal): worth waiting for."""
        return self.serial.interactive

    @property
    def serial_paced(self) -> bool:
        """Input is offered only at idle, a line at a time (see BytesSource). A
        replay host is never paced: the log says when each byte came."""
        return self.serial.paced

    # -- network (virtio-net with a host back-end) ---------------------------------
    def net_transmit(self, icount: int, frame: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.send(frame)

    def net_peek(self, icount: int, timeout: float | None = 0.0) -> bytes | None:
        """The next received frame, left queued until :meth:`net_consume`."""
        if self.tunnel is None:
            return None
        self.tunnel.poll(timeout)
        return self.tunnel.pending[0] if self.tunnel.pending else None

    def net_consume(self, icount: int) -> None:
        """The frame :meth:`net_peek` returned reached the guest at ``icount``."""
        assert self.tunnel is not None
        self.tunnel.pending.popleft()

    def net_more(self) -> bool:
        return self.tunnel is not None

    def entropy(self, icount: int, n: int) -> bytes:
        """Random bytes for virtio-rng (asked inside the guest's notify, at ``icount``)."""
        return os.urandom(n)

    def next_input_icount(self) -> int | None:
        """The icount of the next input already known to arrive (replay only)."""
        return None

    def close(self) -> None:
        self.serial.close()
        if self.tunnel is not None:
            self.tunnel.close()


def monotonic() -> float:
    """Host time for progress and summaries only (never reaches the guest)."""
    return time.perf_counter()


@dataclass(frozen=True, slots=True)
class Conversation:
    """What :func:`converse` saw, in host seconds from the process's start."""

    output: bytes
    prompt_seconds: float | None  # when the prompt first showed (None: never)
    seconds: float  # until the process closed its output, or the timeout
    typed: int  # lines typed
    timed_out: bool


def converse(argv: Sequence[str], lines: Sequence[bytes], prompt: bytes, timeout: float = 300.0) -> Conversation:
    """Run ``argv`` and type ``lines`` on its stdin as a person at a prompt would:
    the next line each time its output shows ``prompt`` once more. For side-by-side
    comparisons (QEMU's serial on stdio in ``bench --linux``); never reaches a guest."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    t0 = time.perf_counter()
    fd = proc.stdout.fileno()
    out = bytearray()
    prompt_seconds: float | None = None
    typed = prompts = 0
    scanned = 0  # output before this offset holds no prompt start not yet counted
    timed_out = True
    try:
        while (left := t0 + timeout - time.perf_counter()) > 0:
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                timed_out = False
                break
            out += chunk
            while (at := out.find(prompt, scanned)) >= 0:
                prompts += 1
                scanned = at + len(prompt)
                if prompt_seconds is None:
                    prompt_seconds = time.perf_counter() - t0
            scanned = max(scanned, len(out) - len(prompt) + 1)
            while typed < min(prompts, len(lines)):
                try:
                    proc.stdin.write(lines[typed])
                    proc.stdin.flush()
                except OSError:
                    break
                typed += 1
        seconds = time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):  # a line the process never read
                stream.close()
    return Conversation(bytes(out), prompt_seconds, seconds, typed, timed_out)

"""The typed events of a recording: every nondeterministic input, SYNC and END.

A replay is exact because everything the guest could observe from the host
is one of these, logged at the icount where it happened (DESIGN.md §1, §4).
Asynchronous inputs (serial bytes, network frames) are delivered only at
slice boundaries, so their icount is the delivery point; SYNC records let
the replayer detect divergence early; END closes a complete recording.

Events are immutable values (``@dataclass(frozen=True, slots=True)``) and
validate their fields on construction, so a writer can never be handed
something the reader would refuse. Each kind has a stable numeric ``TAG``
(its record tag on the wire, docs/FORMAT.md) and a ``KIND`` name for
``replayvm info``; tags are never reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from replayvm.log.format import (
    DIGEST_SIZES,
    I64_MAX,
    I64_MIN,
    MAX_EVENT_DATA,
    MAX_REASON_LEN,
    MAX_STAT_NAME_LEN,
    MAX_STATS,
    U32_MAX,
    U64_MAX,
)


class Event:
    """Base of all event kinds. ``icount`` is the guest instruction count."""

    __slots__ = ()
    TAG: ClassVar[int] = 0
    KIND: ClassVar[str] = "event"
    icount: int


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} is out of range [{lo}, {hi}]")


def _as_bytes(event: Event, name: str, limit: int) -> None:
    """Check a bytes field and store it as immutable ``bytes``."""
    value = getattr(event, name)
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    data = bytes(value)
    if len(data) > limit:
        raise ValueError(f"{name} is {len(data)} bytes, the limit is {limit}")
    object.__setattr__(event, name, data)


def _check_digest(event: Event) -> None:
    _as_bytes(event, "digest", max(DIGEST_SIZES))
    if len(event.digest) not in DIGEST_SIZES:  # type: ignore[attr-defined]
        raise ValueError(f"digest must be one of {DIGEST_SIZES} bytes long")


def _utf8_len(name: str, value: object) -> int:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not encodable as UTF-8") from None


@dataclass(frozen=True, slots=True)
class SerialInput(Event):
    """Host input bytes handed to a character device at a slice boundary.

    ``device`` is the id the machine gives the receiving device (for a 16550,
    its I/O base such as 0x3F8; for virtio-console, its slot).
    """

    TAG: ClassVar[int] = 1
    KIND: ClassVar[str] = "serial-input"
    icount: int
    device: int
    data: bytes

    def __post_init__(self) -> None:
        _check_int("icount", self.icount, 0, U64_MAX)
        _check_int("device", self.device, 0, U32_MAX)
        _as_bytes(self, "data", MAX_EVENT_DATA)


@dataclass(frozen=True, slots=True)
class WallClock(Event):
    """The wall-clock base, logged once at boot: the only host time a guest sees."""

    TAG: ClassVar[int] = 2
    KIND: ClassVar[str] = "wall-clock"
    icount: int
    unix_ns: int

    def __post_init__(self) -> None:
        _check_int("icount", self.icount, 0, U64_MAX)
        _check_int("unix_ns", self.unix_ns, I64_MIN, I64_MAX)


@dataclass(frozen=True, slots=True)
class Entropy(Event):
    """Host random bytes given to the guest (virtio-rng, boot seed)."""

    TAG: ClassVar[int] = 3
    KIND: ClassVar[str] = "entropy"
    icount: int
    data: bytes

    def __post_init__(self) -> None:
        _check_int("icount", self.icount, 0, U64_MAX)
        _as_bytes(self, "data", MAX_EVENT_DATA)


@dataclass(frozen=True, slots=True)
class NetRx(Event):
    """A network frame received from the host and delivered to a NIC."""

    TAG: ClassVar[int] = 4
    KIND: ClassVar[str] = "net-rx"
    icount: int
    device: int
    frame: bytes

    def __post_init__(self) -> None:
        _check_int("icount", self.icount, 0, U64_MAX)
        _check_int("device", self.device, 0, U32_MAX)
        _as_bytes(self, "frame", MAX_EVENT_DATA)


@dataclass(frozen=True, slots=True)
class DeviceResult(Event):
    """Any other device-visible host result (a host file read, a status).

    The extensible kind: ``value`` is opaque to the log and means what the
    device identified by ``device`` says it means.
    """

    TAG: ClassVar[int] = 5
    KIND: ClassVar[str] = "device-result"
    icount: int
    device: int
    value: bytes

    def __post_init__(self) -> None:
        _check_int("icount", self.icount, 0, U64_MAX)
        _check_int("device", self.device, 0, U32_MAX)
        _as_bytes(self, "value", MAX_EVENT_DATA)


@dataclass(frozen=True, slots=True)
class Sync(Event):
    """A divergence check: at ``icount`` the guest was at ``rip`` with this digest."""

    TAG: ClassVar[int] = 6
    KIND: ClassVar[str] = "sync"
    icount: int
    rip: int
    digest: bytes

    def __post_init__(self) -> None:
        _check_int("icount", self.icount, 0, U64_MAX)
        _check_int("rip", self.rip, 0, U64_MAX)
        _check_digest(self)


@dataclass(frozen=True, slots=True)
class End(Event):
    """How the recorded run ended; written once, as the file's END frame.

    ``status`` is the guest's exit status (or a negative signal-like code);
    ``digest`` the final state digest the replay must reach; ``stats`` the
    recorder's counters (exits per reason, ...), read-only.
    """

    TAG: ClassVar[int] = 7
    KIND: ClassVar[str] = "end"
    icount: int
    reason: str
    status: int
    digest: bytes
    stats: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_int("icount", self.icount, 0, U64_MAX)
        if _utf8_len("reason", self.reason) > MAX_REASON_LEN:
            raise ValueError(f"reason is longer than {MAX_REASON_LEN} UTF-8 bytes")
        _check_int("status", self.status, I64_MIN, I64_MAX)
        _check_digest(self)
        if not isinstance(self.stats, Mapping):
            raise TypeError(f"stats must be a mapping, not {type(self.stats).__name__}")
        if len(self.stats) > MAX_STATS:
            raise ValueError(f"more than {MAX_STATS} stats entries")
        for key, value in self.stats.items():
            if _utf8_len("stats key", key) > MAX_STAT_NAME_LEN:
                raise ValueError(f"stats key {key!r} is longer than {MAX_STAT_NAME_LEN} bytes")
            _check_int(f"stats[{key!r}]", value, I64_MIN, I64_MAX)
        object.__setattr__(self, "stats", MappingProxyType(dict(sorted(self.stats.items()))))


KINDS: Mapping[int, type[Event]] = MappingProxyType(
    {cls.TAG: cls for cls in (SerialInput, WallClock, Entropy, NetRx, DeviceResult, Sync, End)}
)
"""Every event kind by its stable wire tag; ``cls.TAG`` is the reverse map."""


def kind_name(kind: int | Event | type[Event]) -> str:
    """Human name of an event kind, for ``replayvm info`` and messages."""
    if isinstance(kind, int):
        cls = KINDS.get(kind)
        return cls.KIND if cls is not None else f"unknown-{kind:#x}"
    return kind.KIND

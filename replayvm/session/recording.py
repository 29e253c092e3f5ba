"""What a recording header holds about the machine, and how it is checked.

The header's config is untrusted input on replay: every field is validated
here, with a one-line :class:`TraceFormatError`, before a machine is built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from replayvm.engine.cpuid import CpuidModel
from replayvm.errors import ConfigError, TraceFormatError
from replayvm.machine import MachineConfig

PLATFORM = "rv-pc"
KERNEL_BLOB = "kernel"
INITRD_BLOB = "initrd"
DISK_BLOB = "disk0"
SERIAL_DEVICE = 0x3F8  # the device id of COM1 in SerialInput events
NET_DEVICE = 1  # the device id of virtio-net #0 in NetRx events
SYNC_INTERVAL = 1 << 26  # instructions between periodic SYNC records (~50 ms with the native counter)


@dataclass(frozen=True, slots=True)
class RecordedSession:
    machine: MachineConfig
    image_name: str
    sync_interval: int

    def to_config(self) -> dict[str, Any]:
        return {
            "platform": PLATFORM,
            "cpuid": CpuidModel.name,
            "engine": "count",
            "memory_mib": self.machine.memory_mib,
            "cmdline": self.machine.cmdline,
            "initrd": self.machine.initrd is not None,  # the bytes are the "initrd" blob
            "virtio": list(self.machine.virtio),
            "net": self.machine.net,
            "disk": self.machine.disk is not None,  # the bytes are the "disk0" blob
            "image": self.image_name,
            "sync_interval": self.sync_interval,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RecordedSession:
        def field(name: str, kind: type) -> Any:
            value = config.get(name)
            if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
                raise TraceFormatError(f"header field {name!r} is missing or not a {kind.__name__}")
            return value

        platform = field("platform", str)
        if platform != PLATFORM:
            raise TraceFormatError(f"recorded on platform {platform!r}; this ReplayVM emulates {PLATFORM!r}")
        cpuid = field("cpuid", str)
        if cpuid != CpuidModel.name:
            raise TraceFormatError(f"recorded with CPU model {cpuid!r}; this ReplayVM provides {CpuidModel.name!r}")
        machine = MachineConfig(field("memory_mib", int), field("cmdline", str))
        if "initrd" in config and field("initrd", bool):
            machine = replace(machine, initrd=b"")  # the replayer puts the blob's bytes here
        if "virtio" in config:
            kinds = field("virtio", list)
            if not all(isinstance(k, str) for k in kinds) or len(kinds) > 6:
                raise TraceFormatError("header field 'virtio' must list device kinds")
            machine = replace(machine, virtio=tuple(kinds), disk=b"" if field("disk", bool) else None)
        if "net" in config:
            net = field("net", str)
            if net not in ("user", "host"):
                raise TraceFormatError(f"header field 'net' is {net[:20]!r}, not user or host")
            machine = replace(machine, net=net)
        try:
            machine.validate()
        except ConfigError as e:
            raise TraceFormatError(f"header machine config: {e}") from None
        interval = field("sync_interval", int)
        if not 1 <= interval <= 1 << 40:
            raise TraceFormatError(f"header sync_interval {interval} out of range")
        return cls(machine, field("image", str)[:200], interval)

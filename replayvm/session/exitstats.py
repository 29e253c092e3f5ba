"""`replayvm stats`: where the VM exits of a recording went.

The recording is replayed (no output) and the exit counters are read at the
end and at every phase mark (a POST code written to port 0x80). The numbers
show the seeds' lesson: full virtualization exits once per byte on the UART
(an OUT to THR and an IN of LSR), paravirtual I/O exits once per batch.
"""

from __future__ import annotations

from pathlib import Path

from replayvm.machine import Machine
from replayvm.session.replayer import Replayer

PORT_NAMES = [
    (0x20, 0x21, "pic-master"), (0xA0, 0xA1, "pic-slave"), (0x40, 0x43, "pit"), (0x61, 0x61, "port61"),
    (0x60, 0x60, "i8042"), (0x64, 0x64, "i8042"), (0x70, 0x71, "rtc"), (0x80, 0x80, "post"),
    (0xF4, 0xF4, "debug-exit"), (0x3F8, 0x3FF, "uart"), (0xCF8, 0xCFF, "pci"),
]  # fmt: skip


def port_device(port: int) -> str:
    for lo, hi, name in PORT_NAMES:
        if lo <= port <= hi:
            return name
    return "unknown"


def _delta(after: dict[str, object], before: dict[str, object]) -> dict[str, object]:
    def sub(a: object, b: object) -> object:
        if isinstance(a, dict):
            keys = set(a) | set(b or {})  # type: ignore[arg-type]
            return {k: sub(a.get(k, 0), (b or {}).get(k, 0)) for k in keys}  # type: ignore[union-attr]
        return a - b  # type: ignore[operator]

    return {k: sub(after[k], before.get(k, {} if isinstance(after[k], dict) else 0)) for k in after}


def summarize(counters: dict[str, object]) -> dict[str, object]:
    """Exits by reason, by device, and per KiB moved, for one span of the run."""
    by_reason = counters["by_reason"]
    io_ports = counters["io_ports"]
    assert isinstance(by_reason, dict) and isinstance(io_ports, dict)
    by_device: dict[str, int] = {}
    for port, n in io_ports.items():
        name = port_device(int(port))
        by_device[name] = by_device.get(name, 0) + n
    uart_exits = by_device.get("uart", 0)
    uart_bytes = int(counters["uart_tx"]) + int(counters["uart_rx"])  # type: ignore[call-overload]
    transports = {}
    virtio = counters["virtio"]
    assert isinstance(virtio, dict)
    mmio_pages = counters["mmio_pages"]
    assert isinstance(mmio_pages, dict)
    for name, st in virtio.items():
        base = int(name.rsplit("@", 1)[1], 16)
        exits = sum(n for page, n in mmio_pages.items() if base <= int(page) < base + 0x1000)
        moved = st["bytes_in"] + st["bytes_out"]
        transports[name] = dict(st, mmio_exits=exits, exits_per_kib=round(exits * 1024 / moved, 2) if moved else None)
    return {
        "exits": sum(by_reason.values()),
        "by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        "by_device": dict(sorted(by_device.items(), key=lambda kv: -kv[1])),
        "uart": {
            "exits": uart_exits,
            "bytes": uart_bytes,
            "exits_per_kib": round(uart_exits * 1024 / uart_bytes, 2) if uart_bytes else None,
        },
        "virtio": transports,
        "interrupts": counters["interrupts"],
    }


def recording_stats(path: str | Path) -> dict[str, object]:
    replayer = Replayer(path)
    report = replayer.run()
    machine: Machine = replayer.machine
    final = machine.counters()
    phases = []
    marks = [(None, 0, {k: ({} if isinstance(v, dict) else 0) for k, v in final.items()}), *machine.phases]
    for i, (code, start, counters) in enumerate(marks):
        end_counters = marks[i + 1][2] if i + 1 < len(marks) else final
        end_icount = marks[i + 1][1] if i + 1 < len(marks) else report.result.icount
        phases.append({
            "phase": "start" if code is None else f"post {code:#04x}",
            "icount": [start, end_icount],
            **summarize(_delta(end_counters, counters)),
        })  # fmt: skip
    return {
        "recording": str(path),
        "instructions": report.result.icount,
        "total": summarize(final),
        "phases": phases if machine.phases else [],
    }

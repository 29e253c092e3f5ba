"""Machine and recording status: info TOPIC, events, stats."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from replayvm.debugger.cmd_breakpoints import breakpoint_table
from replayvm.debugger.commands import CommandError, command, parser
from replayvm.debugger.context import ALIASES, SUB_REGISTERS
from replayvm.debugger.debugger import Debugger
from replayvm.debugger.format import (
    CONTROL_BITS,
    EXCEPTION_NAMES,
    bits_text,
    register_line,
    size_text,
    state_value,
    table,
    with_label,
    wrap_fields,
)
from replayvm.session.replayer import describe

TOP_PORTS = 12


TopicHandler = Callable[[Debugger, list[str]], None]


@dataclass(frozen=True, slots=True)
class InfoTopic:
    name: str
    aliases: tuple[str, ...]
    summary: str
    handler: TopicHandler


INFO_TOPICS: dict[str, InfoTopic] = {}


def info_topic(name: str, summary: str, aliases: tuple[str, ...] = ()) -> Callable[[TopicHandler], TopicHandler]:
    """Register ``info NAME``: the info command's own small registry."""

    def register(handler: TopicHandler) -> TopicHandler:
        INFO_TOPICS[name] = InfoTopic(name, aliases, summary, handler)
        return handler

    return register


def resolve_topic(word: str) -> InfoTopic:
    for topic in INFO_TOPICS.values():
        if word == topic.name or word in topic.aliases:
            return topic
    matches = [t for t in INFO_TOPICS.values() if t.name.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CommandError(f'Ambiguous info command "{word}": {", ".join(t.name for t in matches)}.')
    raise CommandError(f'Undefined info command: "{word}".  Try "help info".')


def topics_help() -> list[str]:
    return table([(f"info {t.name}", t.summary) for t in INFO_TOPICS.values()])


_p = parser(
    "info",
    "Show status: info breakpoints | registers [REG...] | devices [NAME] | exits | checkpoints | symbol ADDR.",
)
_p.add_argument("topic", nargs="?", metavar="TOPIC")
_p.add_argument("args", nargs="*", metavar="ARG")


@command("info", aliases=("i",), parser=_p, category="status")
def info(dbg: Debugger, args: argparse.Namespace) -> None:
    if args.topic is None:
        dbg.console.line('"info" must be followed by the name of an info command. List of info subcommands:')
        dbg.console.lines(topics_help())
        return
    resolve_topic(args.topic).handler(dbg, args.args)


@info_topic("breakpoints", "breakpoints and watchpoints, with conditions and hit counts", ("b", "break", "watchpoints"))
def info_breakpoints(dbg: Debugger, words: list[str]) -> None:
    dbg.console.lines(breakpoint_table(dbg))


def _natural(dbg: Debugger, name: str, value: int) -> str:
    if name == "rip":
        return with_label(value, dbg.label)
    if name in CONTROL_BITS:
        return bits_text(value, CONTROL_BITS[name])
    if name in ("rsp", "rbp", "cr2", "cr3", "fs_base", "gs_base"):
        return f"{value:#x}"
    return str(value - (1 << 64) if value >> 63 else value)


@info_topic("registers", "registers (all, or the ones named: rip rax eax ...)", ("r", "reg", "all-registers"))
def info_registers(dbg: Debugger, words: list[str]) -> None:
    regs = dbg.session.registers()
    names = [w.lstrip("$").lower() for w in words] or list(regs)
    lines = []
    for name in names:
        canonical = ALIASES.get(name, name)
        if canonical in regs:
            value = regs[canonical]
            shown = "eflags" if canonical == "rflags" else canonical
        elif name in SUB_REGISTERS:
            value, shown = dbg.context.fresh().register(name).value & ((1 << SUB_REGISTERS[name][2]) - 1), name
            canonical = name
        else:
            raise CommandError(f"Invalid register `{name}'")
        lines.append(register_line(shown, value, _natural(dbg, canonical, value)))
    dbg.console.lines(lines)


def _device_ports(dbg: Debugger) -> dict[int, list[str]]:
    ports: dict[int, list[str]] = {}
    for base, length, device in dbg.session.machine.bus.ranges():
        span = f"{base:#x}" if length == 1 else f"{base:#x}-{base + length - 1:#x}"
        ports.setdefault(id(device), []).append(span)
    return ports


@info_topic("devices", "the state of each emulated device (save_state), or of one")
def info_devices(dbg: Debugger, words: list[str]) -> None:
    devices = dbg.session.machine.devices()
    if words:
        unknown = [w for w in words if w not in devices]
        if unknown:
            raise CommandError(f'No device "{unknown[0]}" (devices: {", ".join(devices)}).')
        devices = {w: devices[w] for w in words}
    ports = _device_ports(dbg)
    for name, device in devices.items():
        where = ", ".join(ports.get(id(device), []))
        dbg.console.line(f"{name}" + (f"  (ports {where})" if where else ""))
        fields = [f"{k}={state_value(v)}" for k, v in device.save_state().items()]
        dbg.console.lines(wrap_fields(fields))


def _exit_lines(dbg: Debugger) -> list[str]:
    stats = dbg.session.vcpu.stats
    lines = [f"VM exits up to icount {dbg.session.icount}:"]
    rows = [(reason, str(n)) for reason, n in sorted(stats.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))]
    rows.append(("total", str(stats.total())))
    lines += table(rows)
    if stats.exceptions:
        shown = ", ".join(f"{EXCEPTION_NAMES.get(v, f'vector {v}')} {n}" for v, n in sorted(stats.exceptions.items()))
        lines.append(f"Exceptions: {shown}")
    if stats.interrupts:
        lines.append("Interrupts: " + ", ".join(f"vector {v:#x} {n}" for v, n in sorted(stats.interrupts.items())))
    return lines


@info_topic("exits", "VM exits so far, by reason (as KVM names them), exceptions and interrupts")
def info_exits(dbg: Debugger, words: list[str]) -> None:
    dbg.console.lines(_exit_lines(dbg))


@info_topic("checkpoints", "the automatic checkpoints reverse execution starts from")
def info_checkpoints(dbg: Debugger, words: list[str]) -> None:
    session = dbg.session
    points = session.checkpoints()
    store = session.store
    dbg.console.line(
        f"{len(points)} checkpoint{'s' if len(points) != 1 else ''}; {size_text(store.memory)} in use "
        f"(with the RAM shadow), budget {size_text(store.budget)}"
    )
    dbg.console.lines(
        table([("#", "icount", "size")] + [(str(i), str(t), size_text(s)) for i, (t, s) in enumerate(points)])
    )


@info_topic("symbol", "the symbol an address is in (info symbol ADDR)")
def info_symbol(dbg: Debugger, words: list[str]) -> None:
    if not words:
        raise CommandError("Argument required (address).")
    address = dbg.address(" ".join(words))
    found = dbg.symbols.symbolize(address, code=False)
    if found is None:
        dbg.console.line(f"No symbol matches {' '.join(words)}.")
        return
    name, offset = found
    section = dbg.symbols.section_name(address)
    where = f" in section {section}" if section else ""
    dbg.console.line(f"{name} + {offset}{where}" if offset else f"{name}{where}")


_p = parser("events", "Show the recorded events (inputs, SYNC points) nearest the current icount, N each side.")
_p.add_argument("count", nargs="?", metavar="N")


@command("events", parser=_p, category="status")
def events(dbg: Debugger, args: argparse.Namespace) -> None:
    n = dbg.count(args.count, 5, what="count")
    if not 1 <= n <= 1000:
        raise CommandError("events: N must be 1 to 1000.")
    here = dbg.session.icount
    near = dbg.session.events_near(here, n)
    if not near:
        dbg.console.line("The recording holds no events.")
        return
    dbg.console.line(f"Recorded events near icount {here}:")
    marked = False
    for event in near:
        if not marked and event.icount > here:
            dbg.console.line(f"=> icount {here} (now)")
            marked = True
        dbg.console.line(f"   {describe(event)}")
    if not marked:
        dbg.console.line(f"=> icount {here} (now)")


_p = parser("stats", "VM exit statistics so far (by reason, by I/O port and device) and the recording's summary.")


@command("stats", parser=_p, category="status")
def stats(dbg: Debugger, args: argparse.Namespace) -> None:
    session = dbg.session
    out = dbg.console
    out.lines(_exit_lines(dbg))
    ports = session.vcpu.stats.io_ports
    if ports:
        out.line("Busiest I/O ports:")
        bus = session.machine.bus
        rows = []
        for port, n in sorted(ports.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PORTS]:
            hit = bus.lookup(port)
            rows.append((f"{port:#06x}", hit[0].name if hit is not None else "(none)", str(n)))
        out.lines(table(rows))
    replayer = session.replayer
    config = replayer.reader.header.config
    out.line(
        f"Recording: image {config.get('image')}, {config.get('memory_mib')} MiB, cmdline {config.get('cmdline')!r}"
    )
    counts = replayer.reader.summary().event_counts
    out.line("  events: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v) or "none"))
    end = replayer.end
    if end is None:
        out.line("  incomplete: no END record (the recorder was killed?)")
        return
    out.line(f"  ended at icount {end.icount}: {end.reason}, exit status {end.status}")
    recorded = {k.removeprefix("exits."): v for k, v in end.stats.items() if k.startswith("exits.")}
    if recorded:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(recorded.items(), key=lambda kv: (-kv[1], kv[0])))
        out.line(f"  exits over the whole run: {shown}")
    if "serial_out_bytes" in end.stats:
        out.line(f"  serial output: {end.stats['serial_out_bytes']} bytes")
    if "idle_ns" in end.stats:
        out.line(f"  virtual time skipped in HLT: {end.stats['idle_ns'] / 1e6:.3f} ms")

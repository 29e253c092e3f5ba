"""The rv-pc board: memory map, port bus, devices, boot, and the run loop.

Wiring follows DESIGN.md §2 (the same ports and IRQs as QEMU ``-M pc``)::

    0x020-0x021  8259 master        0x0A0-0x0A1  8259 slave
    0x040-0x043  8254 PIT (IRQ0)    0x061        port B (PIT gate 2, OUT2)
    0x060, 0x064 i8042 (IRQ1, 12)   0x070-0x071  CMOS RTC (IRQ8)
    0x0F4        isa-debug-exit     0x3F8-0x3FF  COM1 16550A (IRQ4)
    0xCF8-0xCFF  no PCI (all-ones)

The run loop is the exit handler of a KVM-style VMM: at every slice boundary
it brings device timers up to virtual time, feeds host input the UART has
room for, injects a pending PIC interrupt when the guest can take one, and
sizes the next slice so that nothing it must observe (a timer deadline, the
instruction limit) falls inside it. Everything here is a function of guest
state and the values :class:`~replayvm.host.Host` returned, so a run is
repeatable exactly.
"""

from __future__ import annotations

import copy
import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from unicorn.x86_const import UC_X86_REG_EBX, UC_X86_REG_RSI

from replayvm.boot.bzimage import BOOT_CS, BOOT_DS, is_bzimage, plan_bzimage_boot
from replayvm.boot.elf import is_elf
from replayvm.boot.pvh import plan_pvh_boot
from replayvm.devices.base import Device
from replayvm.devices.bus import PortBus
from replayvm.devices.debug_exit import DebugExit
from replayvm.devices.i8042 import I8042
from replayvm.devices.pci_stub import PciConfigStub
from replayvm.devices.pic8259 import Pic8259Pair
from replayvm.devices.pit8254 import Pit8254, SystemControlPortB
from replayvm.devices.post import PostCodePort
from replayvm.devices.rtc_cmos import CmosRtc
from replayvm.devices.uart16550 import Uart16550
from replayvm.engine.exits import ExitReason
from replayvm.engine.memory import GuestRam
from replayvm.engine.vcpu import Vcpu
from replayvm.errors import ConfigError, GuestError
from replayvm.host import Host
from replayvm.virtio.blk import VirtioBlk
from replayvm.virtio.board import (
    attach,
    cmdline_fragment,
    deliver_net_rx,
    device_stats,
    occupied_slots,
    state_devices,
)
from replayvm.virtio.console import VirtioConsole
from replayvm.virtio.device import VirtioBackend
from replayvm.virtio.mmio import VirtioMmioTransport
from replayvm.virtio.net import VirtioNet
from replayvm.virtio.responder import Responder
from replayvm.virtio.rng import VirtioRng
from replayvm.virtio.wire import VirtualWire

MIN_MEMORY_MIB = 4
MAX_MEMORY_MIB = 3072  # below the MMIO hole at 0xC0000000

MAX_SLICE = 2_000_000  # instructions; per-slice cost is ~20 µs, so this is noise
INPUT_POLL_SLICE = 200_000  # while host input may still arrive

COM1_BASE, COM1_IRQ = 0x3F8, 4
VIRTIO_KINDS = ("blk", "net", "console", "rng")
PIT_IRQ, KBD_IRQ, RTC_IRQ, AUX_IRQ = 0, 1, 8, 12
STATUS_MAX_INSNS = 124  # like timeout(1)
TIMER_PORTS = frozenset({0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71})
# Linux prints this as the last line of panic() and then spins forever with
# interrupts on (panic_timeout 0): the machine stops there instead of hanging.
LINUX_PANIC_END = b"---[ end Kernel panic - not syncing: "
CONSOLE_LINE_MAX = 512


@dataclass(frozen=True, slots=True)
class MachineConfig:
    memory_mib: int = 64
    cmdline: str = ""
    initrd: bytes | None = field(default=None, repr=False)  # Linux initial ramdisk (bzImage boot only)
    virtio: tuple[str, ...] = ()  # virtio-mmio devices, in slot order: blk, net, console, rng
    net: str = "user"  # virtio-net back-end: "user" (built-in gateway 10.0.2.2) or "host" (the Host's tunnel)
    disk: bytes | None = field(default=None, repr=False)  # virtio-blk base image (writes go to an overlay)

    def validate(self) -> None:
        unknown = [kind for kind in self.virtio if kind not in VIRTIO_KINDS]
        if unknown or len(set(self.virtio)) != len(self.virtio):
            raise ConfigError(f"virtio devices must be distinct ones of {', '.join(VIRTIO_KINDS)}, not {self.virtio}")
        if "blk" in self.virtio and self.disk is None:
            raise ConfigError("a virtio-blk device needs a disk image (--disk FILE)")
        if not MIN_MEMORY_MIB <= self.memory_mib <= MAX_MEMORY_MIB:
            raise ConfigError(
                f"--memory must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, not {self.memory_mib}"
            )


@dataclass(slots=True)
class RunResult:
    reason: str  # "debug-exit", "reset", "shutdown", "halted", "panic", "idle", "max-insns"
    status: int
    message: str
    icount: int
    vtime_ns: int
    exits: dict[str, object] = field(default_factory=dict)


def canonical_bytes(value: object) -> bytes:
    """A byte encoding of plain device state that does not depend on dict order."""
    if isinstance(value, dict):
        return b"{" + b",".join(canonical_bytes(k) + b":" + canonical_bytes(value[k]) for k in sorted(value)) + b"}"
    if isinstance(value, (list, tuple)):
        return b"[" + b",".join(canonical_bytes(v) for v in value) + b"]"
    if isinstance(value, (bytes, bytearray)):
        return b"x" + bytes(value).hex().encode()
    if isinstance(value, (bool, int, str)) or value is None:
        return repr(value).encode()
    raise TypeError(f"device state holds a {type(value).__name__}: state must be plain data")


def idle_wait(deadline: int | None, now: int) -> float:
    """How long (host seconds) a halted guest may wait for live host input: at
    most 0.1 s, and never past its next timer deadline."""
    return 0.1 if deadline is None else min(0.1, (deadline - now) / 1e9)


class HostNet:
    """virtio-net's back-end through the Host door: frames the guest sends go
    out (live runs only), frames for it are host input, logged on delivery."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def transmit(self, frame: bytes) -> None:
        self.machine.host.net_transmit(self.machine.vcpu.current_icount(), frame)

    def peek_rx(self) -> bytes | None:
        return self.machine.host.net_peek(self.machine.vcpu.icount)

    def pop_rx(self) -> bytes:
        frame = self.machine.host.net_peek(self.machine.vcpu.icount)
        assert frame is not None
        self.machine.host.net_consume(self.machine.vcpu.icount)
        return frame


class CapturingNet(VirtioNet):
    """virtio-net that shows every frame to a capture (``--net-pcap``)."""

    def __init__(self, backend: object, capture: Callable[[bytes], None]) -> None:
        self._capture = capture
        super().__init__(_CapturingBackend(backend, capture))  # type: ignore[arg-type]

    def receive(self, frame: bytes) -> bool:
        taken = super().receive(frame)
        if taken:
            self._capture(frame)
        return taken


class _CapturingBackend:
    def __init__(self, inner: object, capture: Callable[[bytes], None]) -> None:
        self.inner = inner
        self._capture = capture

    def transmit(self, frame: bytes) -> None:
        self._capture(frame)
        self.inner.transmit(frame)  # type: ignore[attr-defined]

    def peek_rx(self) -> bytes | None:
        return self.inner.peek_rx()  # type: ignore[attr-defined, no-any-return]

    def pop_rx(self) -> bytes:
        return self.inner.pop_rx()  # type: ignore[attr-defined, no-any-return]


class RunObserver(Protocol):
    """What a recorder or replayer plugs into the run loop."""

    def next_stop(self, icount: int) -> int | None:
        """The next icount at which a slice must end, if any."""
        ...

    def at_boundary(self, machine: Machine) -> None:
        """Called at every slice boundary, before anything else happens there."""
        ...


class Machine:
    def __init__(
        self,
        config: MachineConfig,
        image: bytes,
        *,
        host: Host | None = None,
        serial_out: Callable[[bytes], None] | None = None,
        image_name: str = "image",
        max_slice: int = MAX_SLICE,
        console_out: Callable[[bytes], None] | None = None,
        net_capture: Callable[[bytes, int], None] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.host = host or Host()
        self._serial_out = serial_out or (lambda data: None)
        self._console_out = console_out or self._serial_out  # virtio-console output
        self._net_capture = net_capture  # (frame, virtual ns) for --net-pcap
        self.ram = GuestRam(config.memory_mib << 20)
        self.bus = PortBus()
        self.vcpu = Vcpu(self.ram, pio_read=self._pio_read, pio_write=self._pio_write)
        self._out = bytearray()
        self._intr_level = False
        self._canonical = True  # may a pending interrupt be injected at this boundary?
        self._idle_fed_at = -1
        # Running CRCs of what crossed the serial line, in SYNC digests: a
        # changed input or output shows at the next SYNC, not only at the end.
        self.serial_in_crc = 0
        self.serial_out_crc = 0
        self.serial_out_bytes = 0
        self._stop_request: tuple[str, int, str] | None = None
        self.max_slice = max_slice
        self.result: RunResult | None = None
        self._build_devices()
        self._build_virtio()
        self._boot(image, image_name)

    # -- wiring ---------------------------------------------------------------------
    def _build_devices(self) -> None:
        clock = self.vcpu  # Vcpu.now() is the virtual clock devices read
        self.pic = Pic8259Pair()
        self.pit = Pit8254(clock, self.pic.irq_line(PIT_IRQ))
        self.port_b = SystemControlPortB(self.pit)
        self.rtc = CmosRtc(clock, self.host.wall_clock_ns(), self.pic.irq_line(RTC_IRQ))
        self.rtc.set_memory_size(self.ram.size)
        self._line = bytearray()  # the console line being printed (for the panic watch)
        self._output_watches: list[tuple[bytes, Callable[[int], None]]] = []
        self.uart = Uart16550(self.pic.irq_line(COM1_IRQ), self._on_serial_tx)
        self.i8042 = I8042(self._on_reset, self.pic.irq_line(KBD_IRQ), self.pic.irq_line(AUX_IRQ))
        self.debug_exit = DebugExit(self._on_debug_exit)
        self.pci = PciConfigStub()
        self.post = PostCodePort(self._on_post_code)
        self.phases: list[tuple[int, int, dict[str, object]]] = []  # (code, icount, counters at its start)
        bus = self.bus
        bus.register(0x20, 2, self.pic.master)
        bus.register(0xA0, 2, self.pic.slave)
        bus.register(0x40, 4, self.pit)
        bus.register(0x61, 1, self.port_b)
        bus.register(0x60, 1, self.i8042, offset=0)
        bus.register(0x64, 1, self.i8042, offset=4)
        bus.register(0x70, 2, self.rtc)
        bus.register(0xF4, 1, self.debug_exit)
        bus.register(COM1_BASE, 8, self.uart)
        bus.register(0xCF8, 8, self.pci)
        bus.register(0x80, 1, self.post)
        self.timed_devices: tuple[Device, ...] = (self.pit, self.rtc)

    def devices(self) -> dict[str, Device]:
        """Every device with state, by a stable name (for `info devices` and digests)."""
        return {
            "pic-master": self.pic.master,
            "pic-slave": self.pic.slave,
            "pit": self.pit,
            "port61": self.port_b,
            "rtc": self.rtc,
            "uart": self.uart,
            "i8042": self.i8042,
            "post": self.post,
            **state_devices(self.virtio_transports),
            **({"net-wire": self.net_wire} if self.net_wire is not None else {}),
        }

    def save_state(self) -> dict[str, object]:
        """Everything but RAM, as plain data, at a slice boundary (a checkpoint)."""
        return {
            "vcpu": self.vcpu.save_state(),
            "devices": {name: copy.deepcopy(dev.save_state()) for name, dev in self.devices().items()},
            "board": {
                "intr_level": self._intr_level,
                "idle_fed_at": self._idle_fed_at,
                "canonical": self._canonical,
                "serial_in_crc": self.serial_in_crc,
                "serial_out_crc": self.serial_out_crc,
                "serial_out_bytes": self.serial_out_bytes,
            },
        }

    def load_state(self, state: dict[str, object]) -> None:
        """Back to a checkpoint (RAM is restored separately, before this)."""
        self.vcpu.load_state(state["vcpu"])  # type: ignore[arg-type]
        devices = self.devices()
        for name, dev_state in state["devices"].items():  # type: ignore[attr-defined]
            devices[name].load_state(copy.deepcopy(dev_state))
        board = state["board"]
        assert isinstance(board, dict)
        self._intr_level = board["intr_level"]
        self._idle_fed_at = board["idle_fed_at"]
        self._canonical = board["canonical"]
        self.serial_in_crc = board["serial_in_crc"]
        self.serial_out_crc = board["serial_out_crc"]
        self.serial_out_bytes = board["serial_out_bytes"]
        self._out.clear()
        self._line.clear()
        self._stop_request = None
        self.result = None

    def state_digest(self, *, ram: bool, full_ram: bool = False) -> bytes:
        """Digest of the machine state: CPU registers, virtual time, every
        device's ``save_state()``, and with ``ram`` all of guest RAM (its
        sparse digest, or with ``full_ram`` the hash of every byte, which is
        what format-1 recordings hold). Replay compares it at every SYNC;
        equal digests mean equal machines."""
        h = hashlib.blake2b(self.vcpu.register_state(), digest_size=16)
        h.update(struct.pack("<IIQ", self.serial_in_crc, self.serial_out_crc, self.serial_out_bytes))
        for name, dev in self.devices().items():
            h.update(name.encode())
            h.update(canonical_bytes(dev.save_state()))
        if ram:
            h.update(self.ram.digest() if full_ram else self.ram.sparse_digest())
        return h.digest()

    def _build_virtio(self) -> None:
        """Paravirtual devices in the virtio-mmio slots (DESIGN.md §2), announced
        on the command line as Linux and Firecracker expect. Their host input
        (console bytes, entropy) goes through the Host like everything else."""
        self.virtio_console: VirtioConsole | None = None
        self.virtio_transports: list[VirtioMmioTransport] = []
        self.net_wire: VirtualWire | None = None
        self.virtio_net: VirtioNet | None = None  # with the host back-end: fed at slice boundaries
        self.virtio_blk: VirtioBlk | None = None
        backends: list[VirtioBackend] = []
        for kind in self.config.virtio:
            if kind == "blk":
                assert self.config.disk is not None
                self.virtio_blk = VirtioBlk(self.config.disk)
                backends.append(self.virtio_blk)
            elif kind == "net" and self.config.net == "host":
                self.virtio_net = CapturingNet(HostNet(self), self._capture)
                backends.append(self.virtio_net)
            elif kind == "net":
                wire = VirtualWire(Responder(), self.vcpu)
                net = CapturingNet(wire, self._capture)
                wire.connect(net)
                backends.append(net)
                self.timed_devices = (*self.timed_devices, wire)
                self.net_wire = wire
            elif kind == "console":
                self.virtio_console = VirtioConsole(self._console_output)
                backends.append(self.virtio_console)
            elif kind == "rng":
                backends.append(VirtioRng(self._entropy))
        if backends:
            self.virtio_transports = attach(self.vcpu.map_mmio, self.pic.irq_line, self.ram, backends)

    def virtio_cmdline(self) -> str:
        """The kernel command line with the virtio-mmio slots announced."""
        if not self.virtio_transports:
            return self.config.cmdline
        fragment = cmdline_fragment(occupied_slots(len(self.virtio_transports)))
        return f"{self.config.cmdline} {fragment}".strip()

    def counters(self) -> dict[str, object]:
        """Exit and transfer counters (statistics, not guest state)."""
        stats = self.vcpu.stats
        return {
            "by_reason": dict(stats.by_reason),
            "io_ports": dict(stats.io_ports),
            "mmio_pages": dict(stats.mmio_pages),
            "interrupts": sum(stats.interrupts.values()),
            "uart_tx": self.uart.bytes_tx,
            "uart_rx": self.uart.bytes_rx,
            "virtio": device_stats(self.virtio_transports),
        }

    def _on_post_code(self, code: int) -> None:
        # A new phase only when the code changes: Linux's outb_p() writes 0x80 as an I/O delay.
        if not self.phases or self.phases[-1][0] != code:
            self.phases.append((code, self.vcpu.current_icount(), self.counters()))

    def _capture(self, frame: bytes) -> None:
        if self._net_capture is not None:
            self._net_capture(frame, self.vcpu.now())

    def _feed_net(self, timeout: float | None = 0.0) -> bool:
        """Frames from the host back-end that the guest has receive buffers for."""
        net = self.virtio_net
        if net is None or not self.host.net_more() or not net.can_receive():
            return False
        if timeout and self.host.net_peek(self.vcpu.icount, timeout) is None:
            return False
        return deliver_net_rx(net, net.backend) > 0  # type: ignore[arg-type]

    def _console_output(self, data: bytes) -> None:
        self._flush_output()  # keep the UART's and the console's bytes in the guest's order
        self.serial_out_crc = zlib.crc32(data, self.serial_out_crc)
        self.serial_out_bytes += len(data)
        self._console_out(data)

    def _entropy(self, n: int) -> bytes:
        return self.host.entropy(self.vcpu.current_icount(), n)

    def _boot(self, image: bytes, image_name: str) -> None:
        """Boot by what the image is, never by its name: a Linux bzImage (``HdrS``
        at 0x202) through the 64-bit boot protocol, else a PVH ELF."""
        config = self.config
        if is_bzimage(image):
            lm = plan_bzimage_boot(image, self.ram.size, self.virtio_cmdline(), config.initrd, image_name)
            for paddr, data in lm.writes:
                self.ram.write(paddr, data)
            self.vcpu.enter_long_mode(
                lm.entry,
                {UC_X86_REG_RSI: lm.boot_params},
                cr3=lm.cr3,
                gdt=(lm.gdt_base, lm.gdt_limit),
                code_sel=BOOT_CS,
                data_sel=BOOT_DS,
            )
            return
        if not is_elf(image):
            raise ConfigError(f"{image_name} is not an ELF (PVH) kernel nor a Linux bzImage (no 'HdrS' header)")
        if config.initrd is not None:
            raise ConfigError(f"{image_name}: --initrd needs a Linux bzImage; PVH guests take no initrd")
        plan = plan_pvh_boot(image, self.ram.size, self.virtio_cmdline(), image_name)
        for paddr, data in plan.writes:
            self.ram.write(paddr, data)
        self.vcpu.enter_protected_mode_flat(plan.entry, {UC_X86_REG_EBX: plan.start_info})

    # -- port I/O exits ---------------------------------------------------------------
    def _pio_read(self, port: int, size: int) -> int:
        value = self.bus.read(port, size)
        self._after_io(port)
        return value

    def _pio_write(self, port: int, size: int, value: int) -> None:
        self.bus.write(port, size, value)
        self._after_io(port)
        if port in TIMER_PORTS:
            self.vcpu.kick()  # a reprogrammed timer may fire inside the current slice

    def _after_io(self, port: int) -> None:
        """End the slice right after this instruction when the world changed:
        the PIC's INTR output rose (the CPU takes the interrupt at the next
        instruction boundary), or the UART made room while host input waits
        (QEMU's chardev delivers as soon as the receiver can take a byte).
        Both depend only on guest actions, so where slices end does not."""
        level = self.pic.has_interrupt()
        if level and not self._intr_level:
            self.vcpu.kick()
        self._intr_level = level
        if COM1_BASE <= port < COM1_BASE + 8 and self.host.serial_waiting() and self._input_can_receive():
            self.vcpu.kick()

    def _on_debug_exit(self, status: int) -> None:
        self._finish("debug-exit", status, f"guest exited with status {status} (isa-debug-exit)")
        self.vcpu.request_stop(ExitReason.STOP)

    def watch_output(self, marker: bytes, callback: Callable[[int], None]) -> None:
        """Call ``callback(icount)`` once, when the serial output first shows
        ``marker`` within a line, with the exact icount of the byte that
        completed it (a benchmark's "instructions to the shell prompt").
        Wiring, not state: nothing the guest sees changes."""
        self._output_watches.append((marker, callback))

    def _on_serial_tx(self, byte: int) -> None:
        self._out.append(byte)
        if byte != 0x0A:
            if len(self._line) < CONSOLE_LINE_MAX:
                self._line.append(byte)
                if self._output_watches:
                    self._check_output_watches()
            return
        line, self._line = self._line, bytearray()
        at = line.find(LINUX_PANIC_END)
        if at >= 0:
            why = line[at + len(LINUX_PANIC_END) :].decode("ascii", "replace").rstrip("\r ]-")
            v = self.vcpu
            self._finish(
                "panic",
                GuestError.exit_status,
                f"guest kernel panicked at icount {v.current_icount()}, RIP {v.rip:#x}: {why}",
            )
            v.request_stop(ExitReason.STOP)

    def _check_output_watches(self) -> None:
        for watch in list(self._output_watches):
            marker, callback = watch
            if self._line.endswith(marker):
                self._output_watches.remove(watch)
                callback(self.vcpu.current_icount())

    def _on_reset(self) -> None:
        self._finish("reset", 0, "guest requested a reset (i8042); stopping like QEMU -no-reboot")
        self.vcpu.request_stop(ExitReason.STOP)

    def _finish(self, reason: str, status: int, message: str) -> None:
        if self.result is None:
            v = self.vcpu
            self.result = RunResult(reason, status, message, v.current_icount(), v.now())

    # -- the run loop -----------------------------------------------------------------
    def _flush_output(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            self.serial_out_crc = zlib.crc32(data, self.serial_out_crc)
            self.serial_out_bytes += len(data)
            self._serial_out(data)

    def _fire_due(self, now: int) -> bool:
        """Bring device timers due by ``now`` up to date; True if any fired."""
        fired = False
        for dev in self.timed_devices:
            d = dev.next_deadline()
            if d is not None and d <= now:
                dev.advance(now)
                fired = True
        return fired

    def _next_deadline(self) -> int | None:
        deadlines = [d for d in (dev.next_deadline() for dev in self.timed_devices) if d is not None]
        return min(deadlines) if deadlines else None

    def _input_can_receive(self) -> bool:
        """Room for host input in the console device: the virtio console when
        the machine has one (the stdin/stdout alternative to the UART), else COM1."""
        if self.virtio_console is not None:
            return self.virtio_console.can_receive()
        return self.uart.can_receive()

    def _feed_serial(self, timeout: float | None = 0.0, *, idle: bool = False) -> bool:
        """Give the console device the host bytes it has room for (QEMU's
        chardev rule); True if any byte was delivered. Paced (scripted) input
        goes only to an idle guest that listens (the UART's receive interrupt
        on), one line per idle period, as a person types at a prompt."""
        host, console = self.host, self.virtio_console
        paced = host.serial_paced
        if paced and (not idle or (console is None and not self.uart.receive_interrupt_enabled())):
            return False
        fed = False
        while self._input_can_receive() and host.serial_more():
            data = host.serial_input(self.vcpu.icount, 1, timeout)
            if not data:
                break
            if console is not None:
                console.receive(data)
            else:
                self.uart.receive(data[0])
            self.serial_in_crc = zlib.crc32(data, self.serial_in_crc)
            fed = True
            timeout = 0.0
            if paced and data.endswith(b"\n"):
                break
        return fed

    def request_stop(self, reason: str, status: int, message: str) -> None:
        """Stop at the next slice boundary (Ctrl-C, a debugger); safe from a signal handler."""
        self._stop_request = (reason, status, message)

    def run(self, max_insns: int | None = None, observer: RunObserver | None = None) -> RunResult:
        """Run until the guest exits, stops, or ``max_insns`` instructions have run.

        At every slice boundary, in this order: the observer (recorder or
        replayer) sees the state; stop requests are honoured; device timers
        fire; host input is fed (one opportunity per icount: either here or
        in the idle step that ended the previous slice); a pending interrupt
        is injected; the next slice is sized to end at the next timer
        deadline, the next logged input, the next observer stop and the
        instruction limit, whichever comes first.
        """
        vcpu, host = self.vcpu, self.host
        try:
            while self.result is None:
                icount = vcpu.icount
                if observer is not None:
                    observer.at_boundary(self)
                    if self.result is not None:
                        break
                if self._stop_request is not None:
                    request, self._stop_request = self._stop_request, None
                    self._finish(*request)
                    break
                if max_insns is not None and icount >= max_insns:
                    self._finish("max-insns", STATUS_MAX_INSNS, f"stopped after {icount} instructions (--max-insns)")
                    break
                now = vcpu.now()
                fired = self._fire_due(now)
                deadline = self._next_deadline()
                if icount != self._idle_fed_at and (self._feed_serial() | self._feed_net()):
                    fired = True
                budget = self.max_slice
                shadow_step = False
                if self.pic.has_interrupt():
                    # Interrupts are taken only at boundaries every run has (DESIGN.md
                    # §1): where a timer, a logged input or the guest made one --
                    # never at one a seek, a SYNC or the slice limit made, so where
                    # a replay stops cannot move them.
                    if (fired or self._canonical) and vcpu.interrupts_enabled():
                        vcpu.inject_interrupt(self.pic.acknowledge())
                    elif vcpu.interrupt_shadow():
                        budget, shadow_step = 1, True  # STI/MOV SS shadow: one more instruction
                if self.pic.has_interrupt():
                    # The interrupt window: end the slice where STI, POPF or IRETQ
                    # sets IF (each ends a translation block), as the CPU would
                    # take the interrupt right there.
                    vcpu.arm_interrupt_window()
                else:
                    vcpu.disarm_interrupt_window()
                self._intr_level = self.pic.has_interrupt()
                for stop in (
                    deadline - now + icount if deadline is not None else None,
                    host.next_input_icount(),
                    observer.next_stop(icount) if observer is not None else None,
                    max_insns,
                ):
                    if stop is not None and stop > icount:
                        budget = min(budget, stop - icount)
                if (host.serial_interactive and host.serial_more()) or (self.virtio_net and host.tunnel):
                    budget = min(budget, INPUT_POLL_SLICE)
                exit_reason = vcpu.run(budget)
                # HLT and kicks (an I/O exit raised INTR or made room for input)
                # end slices where the guest put them.
                self._canonical = shadow_step or exit_reason in (ExitReason.HLT, ExitReason.INTERRUPT_WINDOW)
                self._flush_output()
                if exit_reason is ExitReason.SHUTDOWN:
                    self._finish("shutdown", 0, vcpu.stop_message or "guest shut down")
                elif exit_reason is ExitReason.HLT:
                    self._idle()
        except GuestError as e:
            self._flush_output()
            self._finish("guest-error", e.exit_status, str(e))
        assert self.result is not None
        self.result.exits = vcpu.stats.as_dict()
        return self.result

    def _idle(self) -> None:
        """The guest executed HLT: wait for host input or skip virtual time to
        the next timer deadline, as KVM's halt polling would sleep."""
        vcpu, host = self.vcpu, self.host
        if not vcpu.interrupts_enabled():
            self._finish(
                "halted", 4, f"guest halted with interrupts disabled at icount {vcpu.icount}, RIP {vcpu.rip:#x}"
            )
            return
        if self.pic.has_interrupt():
            return
        now = vcpu.now()
        self._fire_due(now)
        deadline = self._next_deadline()
        if self.pic.has_interrupt():
            return
        if host.serial_more() and self._input_can_receive():
            # This icount's one input opportunity: a live terminal may take real
            # time (at most until the next timer); a replay looks at the log.
            wait = idle_wait(deadline, now) if host.serial_interactive else 0.0
            self._idle_fed_at = vcpu.icount
            self._feed_serial(timeout=wait, idle=True)
            if self.pic.has_interrupt():
                return
        if self.virtio_net is not None and host.net_more() and self.virtio_net.can_receive():
            wait = idle_wait(deadline, now) if host.tunnel is not None else 0.0
            self._idle_fed_at = vcpu.icount
            if self._feed_net(timeout=wait) and self.pic.has_interrupt():
                return
        if deadline is not None:
            vcpu.idle_ns += max(0, deadline - now)
        elif not host.serial_more() and not (self.virtio_net is not None and host.net_more()):
            self._finish(
                "idle", 0, f"guest is idle with nothing left to wake it (icount {vcpu.icount}, RIP {vcpu.rip:#x})"
            )

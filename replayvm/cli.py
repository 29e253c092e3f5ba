"""The `replayvm` command: argparse front door (DESIGN.md §6).

Errors a user can cause are one line on stderr and a meaningful exit status
(2 for bad input, the guest's status otherwise); a traceback only with
``--debug``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from replayvm import __version__
from replayvm.errors import ConfigError, ReplayVMError
from replayvm.host import (
    BytesSource,
    Host,
    SerialSource,
    StreamSource,
    TerminalSource,
    UdpTunnel,
    monotonic,
    parse_udp_tunnel,
)


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def resolve_image(spec: str) -> tuple[bytes, str, str | None]:
    """IMAGE is a path or a bundled guest name: (bytes, display name, default cmdline)."""
    from replayvm.guests import catalog

    path = Path(spec)
    if path.is_file():
        try:
            return path.read_bytes(), str(path), None
        except OSError as e:
            raise ConfigError(f"cannot read {spec}: {e.strerror}") from None
    if spec in [g.name for g in catalog.all_guests()]:
        guest = catalog.get(spec)
        image = guest.image
        if not image.is_file():
            raise ConfigError(f"bundled guest {spec!r} has no image; build it with: python -m replayvm.guests.build")
        return image.read_bytes(), spec, guest.cmdline
    if path.exists():
        raise ConfigError(f"{spec} is not a regular file")
    raise ConfigError(f"no such file or bundled guest: {spec} (see `replayvm guests`)")


def _serial_source(input_path: str | None, *, terminal: bool = False) -> SerialSource:
    if input_path is not None:
        try:
            return BytesSource(Path(input_path).read_bytes(), paced=True)
        except OSError as e:
            raise ConfigError(f"cannot read --input {input_path}: {e.strerror}") from None
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return SerialSource()
    try:
        if os.isatty(stdin.fileno()):
            return TerminalSource(stdin.buffer) if terminal else SerialSource()
    except (OSError, ValueError):
        return SerialSource()
    return StreamSource(stdin.buffer)


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _summary(result, seconds: float) -> str:  # type: ignore[no-untyped-def]
    exits = result.exits
    by = exits.get("by_reason", {})
    parts = ", ".join(f"{k} {v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:6])
    mips = result.icount / seconds / 1e6 if seconds > 0 else 0.0
    return (
        f"replayvm: {result.icount} instructions, {exits.get('total', 0)} exits ({parts}), "
        f"{seconds:.2f} s wall, {mips:.1f} MIPS, virtual time {result.vtime_ns / 1e9:.3f} s"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from replayvm.machine import Machine

    image, name, default_cmdline = resolve_image(args.image)
    cmdline = args.cmdline if args.cmdline is not None else (default_cmdline or "")
    host = _host(args, _serial_source(args.input))
    machine = Machine(
        _machine_config(args, cmdline),
        image,
        host=host,
        serial_out=_write_stdout,
        image_name=name,
        net_capture=_pcap_writer(args),
    )
    t0 = monotonic()
    result = machine.run(max_insns=args.max_insns)
    seconds = monotonic() - t0
    host.close()
    if result.reason not in ("debug-exit",):
        print(f"replayvm: {result.message}", file=sys.stderr)
    _after_run(args, machine)
    if not args.quiet:
        print(_summary(result, seconds), file=sys.stderr)
    return result.status


def _after_run(args: argparse.Namespace, machine) -> None:  # type: ignore[no-untyped-def]
    """Device warnings (a misbehaving virtio driver) and --disk-writable."""
    from replayvm.virtio.board import warnings

    for line in warnings(machine.virtio_transports):
        print(f"replayvm: warning: {line}", file=sys.stderr)
    blk = machine.virtio_blk
    if getattr(args, "disk_writable", False) and args.disk and blk is not None and blk.overlay:
        try:
            Path(args.disk).write_bytes(blk.disk_bytes())
        except OSError as e:
            raise ConfigError(f"cannot write back --disk {args.disk}: {e.strerror}") from None


def cmd_record(args: argparse.Namespace) -> int:
    from replayvm.session.recorder import Recorder
    from replayvm.testing.expectations import parse_expectation

    image, name, default_cmdline = resolve_image(args.image)
    cmdline = args.cmdline if args.cmdline is not None else (default_cmdline or "")
    output = args.output or f"{Path(name).stem}.rvr"
    expectations = [parse_expectation(spec) for spec in args.expect]
    on_finish, capture = None, None
    if expectations or args.note:
        on_finish, capture = _bug_report(image, args.note or "", expectations)
    host = _host(args, _serial_source(args.input, terminal=True))

    def serial_out(data: bytes) -> None:
        if capture is not None:
            capture(data)
        _write_stdout(data)

    try:
        recorder = Recorder(
            output,
            image,
            _machine_config(args, cmdline),
            host=host,
            serial_out=serial_out,
            image_name=name,
            on_finish=on_finish,
            net_capture=_pcap_writer(args),
            **({"sync_interval": args.sync_interval} if args.sync_interval else {}),
        )
    except OSError as e:
        host.close()
        raise ConfigError(f"cannot write {output}: {e.strerror}") from None

    result, seconds = _run_recorder(recorder, host, args.max_insns)
    if result.reason != "debug-exit":
        print(f"replayvm: {result.message}", file=sys.stderr)
    _after_run(args, recorder.machine)
    if not args.quiet:
        print(_summary(result, seconds), file=sys.stderr)
        size = Path(output).stat().st_size
        print(f"replayvm: recorded {output} ({size} bytes, {recorder.writer.events_written} events)", file=sys.stderr)
    return result.status


def _run_recorder(recorder, host: Host, max_insns: int | None = None) -> tuple:  # type: ignore[no-untyped-def,type-arg]
    """Run a recorder until the guest ends or Ctrl-C: (result, wall seconds). Ctrl-C
    finishes the file cleanly at the next slice boundary; a second Ctrl-C kills."""
    import signal

    def on_sigint(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        recorder.machine.request_stop("interrupted", 130, "recording interrupted by Ctrl-C")

    previous = signal.signal(signal.SIGINT, on_sigint)
    t0 = monotonic()
    try:
        result = recorder.run(max_insns=max_insns)
    finally:
        signal.signal(signal.SIGINT, previous)
        host.close()
    return result, monotonic() - t0


def _bug_report(image: bytes, note: str, expectations: list) -> tuple:  # type: ignore[type-arg]
    """The recorder's on_finish hook that stores a bug report, and its output capture."""
    from replayvm.debugger.symbols import SymbolTable
    from replayvm.testing.expectations import REPORT_TAG, Outcome, OutputCapture, build_report, check

    capture = OutputCapture()
    symbols = SymbolTable.from_elf(image)

    def on_finish(machine, result) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
        outcome = Outcome(result.status, result.reason, capture, machine.vcpu.last_exception, symbols.function_name)
        if any(e.kind == "final" for e in expectations):
            from replayvm.testing.check import final_state_evaluator

            outcome.evaluate = final_state_evaluator(machine, image)
        report = build_report(note, expectations, outcome)
        for expectation in report.expectations:
            failure = check(expectation, outcome, report)
            if failure is not None:
                print(f"replayvm: warning: this run does not meet --expect {expectation}: {failure}", file=sys.stderr)
        return {REPORT_TAG: report.to_bytes()}

    return on_finish, capture


def cmd_replay(args: argparse.Namespace) -> int:
    from replayvm.testing.check import replay_and_check

    path = Path(_recording_path(args.recording))
    t0 = monotonic()
    check = replay_and_check(path, on_output=_write_stdout, verify=args.verify)
    for line in check.verify_lines:
        print(f"replayvm: {line}", file=sys.stderr)
    seconds = monotonic() - t0
    if check.divergence is not None:
        print(f"replayvm: {check.explain()}", file=sys.stderr)
        return check.divergence.exit_status
    report = check.replay
    assert report is not None
    result = report.result
    if not args.quiet:
        print(_summary(result, seconds), file=sys.stderr)
    if not report.complete:
        print(
            f"replayvm: recording is incomplete (the recorder was killed?): replayed to icount {result.icount}, "
            f"its last complete chunk; {report.syncs_checked} SYNC points matched",
            file=sys.stderr,
        )
        return 0
    print(
        f"replayvm: replay matched the recording: {report.syncs_checked} SYNC points and the final state",
        file=sys.stderr,
    )
    if check.report is not None:
        met = len(check.report.expectations) - len(check.failures)
        print(f"replayvm: expectations: {met} of {len(check.report.expectations)} met", file=sys.stderr)
        for failure in check.failures:
            print(f"replayvm: expectation not met: {failure}", file=sys.stderr)
    return result.status


def _recording_path(text: str) -> str:
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"no such recording: {text}")
    return text


def cmd_info(args: argparse.Namespace) -> int:
    from replayvm.log import RecordingReader
    from replayvm.testing.expectations import read_report

    with RecordingReader(_recording_path(args.recording)) as reader:
        summary = reader.summary()
        header = reader.header
        info = {
            "file": args.recording,
            "format_version": header.format_version,
            "replayvm_version": header.replayvm_version,
            "unicorn_version": header.unicorn_version,
            "config": header.config,
            "blobs": [
                {"name": b.name, "size": b.size, "stored": b.stored_size, "sha256": b.sha256}
                for b in reader.blobs.values()
            ],
            "complete": reader.complete,
            "events": dict(summary.event_counts),
            "icount_first": summary.first_icount,
            "icount_last": summary.last_icount,
            "file_size": reader.file_size,
            "event_bytes": summary.event_bytes,
            "event_stored_bytes": summary.event_stored_bytes,
            "blob_ratio": summary.blob_ratio,
            "event_ratio": summary.event_ratio,
        }
        report = read_report(reader)
        if report is not None:
            info["note"] = report.note
            info["expect"] = [str(e) for e in report.expectations]
        end = reader.end
        if end is not None:
            info["end"] = {"icount": end.icount, "reason": end.reason, "status": end.status, "digest": end.digest.hex()}
        else:
            info["truncated_at"] = reader.truncated_at
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    cfg = header.config
    print(f"{args.recording}: ReplayVM recording, format {header.format_version}")
    print(f"  written by     replayvm {header.replayvm_version}, unicorn {header.unicorn_version}")
    print(f"  machine        {cfg.get('platform')}, {cfg.get('memory_mib')} MiB, cpu {cfg.get('cpuid')}")
    print(f"  image          {cfg.get('image')}  cmdline {cfg.get('cmdline')!r}")
    for b in info["blobs"]:  # type: ignore[union-attr]
        print(f"  blob           {b['name']}: {b['size']} bytes ({b['stored']} stored), sha256 {b['sha256'][:16]}...")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.event_counts.items()) if v) or "none"
    print(f"  events         {counts}")
    print(f"  icount span    {summary.first_icount} .. {summary.last_icount}")
    ratio = f"{summary.event_ratio:.2f}" if summary.event_ratio else "n/a"
    print(
        f"  sizes          file {reader.file_size} bytes; events {summary.event_bytes} raw, "
        f"{summary.event_stored_bytes} stored (ratio {ratio})"
    )
    if report is not None:
        if report.note:
            print(f"  note           {report.note}")
        for expectation in report.expectations:
            print(f"  expect         {expectation}")
    if end is not None:
        print(f"  status         complete: {end.reason}, exit status {end.status} at icount {end.icount}")
    else:
        print(f"  status         INCOMPLETE (no END record; readable up to offset {reader.truncated_at})")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from replayvm.session.exitstats import recording_stats

    stats = recording_stats(_recording_path(args.recording))
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{args.recording}: {stats['instructions']} instructions")
    spans = [("whole run", stats["total"])] + [(f"phase {p['phase']} @{p['icount'][0]}", p) for p in stats["phases"]]
    for title, span in spans:
        print(f"\n{title}: {span['exits']} VM exits, {span['interrupts']} interrupts injected")
        print("  by reason:  " + ", ".join(f"{k} {v}" for k, v in span["by_reason"].items() if v))
        print("  by device:  " + ", ".join(f"{k} {v}" for k, v in span["by_device"].items() if v))
        uart = span["uart"]
        if uart["bytes"]:
            print(f"  uart:       {uart['exits']} exits for {uart['bytes']} bytes = {uart['exits_per_kib']} exits/KiB")
        for name, dev in span["virtio"].items():
            moved = dev["bytes_in"] + dev["bytes_out"]
            if moved or dev["mmio_exits"]:
                print(
                    f"  {name}: {dev['mmio_exits']} MMIO exits for {moved} bytes = {dev['exits_per_kib']} exits/KiB; "
                    f"{dev['notifications']} notifications, {dev['interrupts']} interrupts, {dev['requests']} requests"
                )
    return 0


def cmd_trim(args: argparse.Namespace) -> int:
    from replayvm.session.trim import trim

    source = _recording_path(args.recording)
    if Path(args.output).resolve() == Path(source).resolve():
        raise ConfigError("the trimmed recording must go to a new file (-o)")
    start = trim(source, args.start, args.output)
    before, after = Path(source).stat().st_size, Path(args.output).stat().st_size
    print(f"replayvm: {args.output} starts at icount {start}: {after} bytes (was {before})", file=sys.stderr)
    return 0


def cmd_guests(args: argparse.Namespace) -> int:
    from replayvm.guests import catalog

    width = max(len(g.name) for g in catalog.all_guests())
    for guest in catalog.all_guests():
        extra = f"  [cmdline: {guest.cmdline}]" if guest.cmdline else ""
        print(f"{guest.name:<{width}}  {guest.description}{extra}")
    return 0


def cmd_guests_build_initramfs(args: argparse.Namespace) -> int:
    """A busybox initramfs (newc cpio written by replayvm.guests.initramfs)."""
    from replayvm.guests.initramfs import DEFAULT_INIT, build_initramfs
    from replayvm.guests.linux_assets import find_assets

    busybox_path = args.busybox
    if busybox_path is None:
        assets = find_assets()
        if assets is None:
            raise ConfigError("no busybox: pass --busybox PATH, or fetch one with `replayvm guests fetch-linux`")
        busybox_path = str(assets.busybox)
    busybox = _read_file(busybox_path, "--busybox")
    init = DEFAULT_INIT
    if args.init is not None:
        try:
            init = _read_file(args.init, "--init").decode()
        except UnicodeDecodeError:
            raise ConfigError(f"--init {args.init}: not a text script") from None
        if not init.startswith("#!"):
            raise ConfigError(f"--init {args.init}: no #! line, so the kernel could not run it as /init")
    try:
        data = build_initramfs(busybox, init)
    except ValueError as e:
        raise ConfigError(f"--busybox {busybox_path}: {e}") from None
    try:
        Path(args.output).write_bytes(data)
    except OSError as e:
        raise ConfigError(f"cannot write {args.output}: {e.strerror}") from None
    print(f"replayvm: wrote {args.output} ({len(data)} bytes: /init, /bin/busybox and its applets)", file=sys.stderr)
    return 0


def cmd_guests_fetch_linux(args: argparse.Namespace) -> int:
    assets = _fetch_linux(args.dir, force=args.force)
    print(f"replayvm: {assets.kernel_package} in {assets.directory}: vmlinuz, busybox, initrd.cpio", file=sys.stderr)
    return 0


def _fetch_linux(directory: Path | None = None, *, force: bool = False):  # type: ignore[no-untyped-def]
    """The Linux assets, downloaded with apt-get unless already there (one progress line)."""
    from replayvm.guests import linux_assets

    where = directory or linux_assets.default_dir()
    if force or linux_assets.find_assets(where) is None:
        if shutil.which("apt-get") is None:
            raise ConfigError(
                f"the Linux kernel and busybox are not in {where}, and apt-get is not available to download "
                f"them (they come from Debian's {linux_assets.METAPACKAGE} and {linux_assets.BUSYBOX_PACKAGE})"
            )
        print(
            f"replayvm: fetching Debian's {linux_assets.METAPACKAGE} kernel and {linux_assets.BUSYBOX_PACKAGE} "
            f"with apt-get download into {where} ...",
            file=sys.stderr,
            flush=True,
        )
    try:
        return linux_assets.fetch(where, force=force)
    except linux_assets.AssetError as e:
        raise ConfigError(f"cannot fetch the Linux assets: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot fetch the Linux assets into {where}: {e.strerror}") from None


def _read_file(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {option} {path}: {e.strerror}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from replayvm.bench import bench

    if args.repeat is not None and (args.linux or args.timeline):
        raise ConfigError("--repeat applies to the compute-guest benchmark (`replayvm bench` alone)")
    if args.linux:
        return cmd_bench_linux(args)
    if args.no_qemu:
        raise ConfigError("--no-qemu applies to `replayvm bench --linux`")
    if args.timeline:
        from replayvm.bench import bench_timeline

        timeline = bench_timeline()
        if args.json:
            print(json.dumps(timeline, indent=2))
            return 0
        rs = timeline["reverse_stepi_ms"]
        print(f"time travel on a recording of {timeline['instructions']} instructions (crc work={timeline['work']})")
        print(
            f"  record {timeline['record_s']} s; first replay building checkpoints "
            f"{timeline['first_replay_with_checkpoints_s']} s"
        )
        print(f"  reverse-stepi at {rs['samples']} random positions: median {rs['median']} ms, worst {rs['worst']} ms")
        print(
            f"  reverse-continue over {timeline['reverse_continue_distance']} instructions (a breakpoint on kmain"
            f" from the end) / forward replay over them = {timeline['reverse_continue_vs_forward']}"
        )
        print(
            f"  checkpoint memory {timeline['checkpoint_memory_mib']} MiB "
            f"(budget {timeline['checkpoint_budget_mib']} MiB, {timeline['checkpoints']} checkpoints)"
        )
        return 0
    image, _, _ = resolve_image("crc")
    cmdline = args.cmdline if args.cmdline is not None else "work=4"  # ~6.5e8 insns: fixed costs amortized
    args.repeat = 8 if args.repeat is None else args.repeat
    if not 1 <= args.repeat <= 100:
        raise ConfigError("--repeat must be 1-100")
    from replayvm.engine.nativebench import Rate, bench_engines

    def progress(rate: Rate, round_: int, rounds: int) -> None:
        if sys.stderr.isatty():  # one line, rewritten: where a ~minute of work is
            print(f"\rbench: {rate.name:<12} run {round_}/{rounds}  {rate.seconds:7.3f} s  ", end="", file=sys.stderr)

    report = bench(image, cmdline, repeat=args.repeat, progress=progress)
    report["engines"] = bench_engines(image, cmdline, repeat=args.repeat, progress=progress)
    if sys.stderr.isatty():
        print("\r" + " " * 50 + "\r", end="", file=sys.stderr)
    from replayvm.bench import bench_io

    report["io"] = bench_io()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"compute guest `crc` ({cmdline or 'default cmdline'}), slices of {report['slice']} instructions"
        f" (each run in a fresh process; best of {report['repeat']}, bare Unicorn once)"
    )
    for side in report["sides"]:  # type: ignore[union-attr]
        print(
            f"  {side['name']:<13} {side['instructions']:>12} insns  {side['seconds']:8.3f} s  {side['mips']:9.1f} MIPS"
        )
    print(f"  ratio replayvm / bare-unicorn = {report['ratio']:.3f}  (MIPS)")
    print(f"  record time / run time        = {report['record_time_vs_run']:.3f}")
    print(f"  replay time / run time        = {report['replay_time_vs_run']:.3f}")
    engines = report["engines"]
    print(
        f"counting engines on the same image (bare Unicorn, no devices; fresh processes, best of {args.repeat},"
        " count once):"
    )
    for side in engines["sides"]:  # type: ignore[index]
        print(f"  {side['engine']:<13} {side['seconds']:8.3f} s  {side['mips']:9.1f} MIPS")
    print(f"  count / free = {engines['count_vs_free']:.3f}", end="")  # type: ignore[index]
    if "native_vs_free" in engines:  # type: ignore[operator]
        print(
            f", native / free = {engines['native_vs_free']:.3f}"  # type: ignore[index]
            f"  (a no-op block hook alone: {engines['hook_floor_vs_free']:.3f})"  # type: ignore[index]
        )
        if "native_calls_vs_free" in engines:  # type: ignore[operator]
            calls = engines["native_calls_vs_free"]  # type: ignore[index]
            print(f"  native-calls / free = {calls:.3f}  (every block calls the hook instead of counting inline)")
    else:
        print("  (native counter not built)")
    io = report["io"]
    print("guest I/O, full virtualization vs paravirtual (wall time of the whole run):")
    for label, key in (("UART (16550)", "uart"), ("virtio-blk", "virtio_blk")):
        side = io[key]  # type: ignore[index]
        print(
            f"  {label:<13} {side['mib']:>7} MiB  {side['seconds']:8.3f} s  {side['mib_per_s']:9} MiB/s  "
            f"{side['exits_per_mib']:>10} exits/MiB"
        )
    return 0


def cmd_bench_linux(args: argparse.Namespace) -> int:
    """Debian's kernel to the shell prompt and through a short session: run,
    record and replay side by side with QEMU TCG (replayvm.benchlinux)."""
    from replayvm.benchlinux import bench_linux
    from replayvm.guests import linux_assets

    if args.timeline or args.cmdline is not None:
        raise ConfigError("--timeline and --cmdline apply to the compute-guest bench, not to --linux")
    assets = linux_assets.find_assets()
    if assets is None:
        raise ConfigError(
            f"the Linux assets are not in {linux_assets.default_dir()}: fetch them with `replayvm guests fetch-linux`"
        )
    report = bench_linux(assets, qemu=not args.no_qemu)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    sides: list[dict] = report["sides"]  # type: ignore[assignment,type-arg]
    print(
        f"Linux: {report['kernel']} + the test initramfs, --append {report['append']!r}, "
        f"{report['memory_mib']} MiB, engine {report['engine']}"
    )
    commands: list[str] = report["commands"]  # type: ignore[assignment]
    print(
        f"session: boot to the first {report['prompt']!r} shell prompt, then {len(commands)} commands typed at it "
        "(the last is exit; init's reboot -f ends it)"
    )

    def cell(insns: object, seconds: object, mips: object, paren: bool = False) -> str:
        count = f"{insns:,}" if isinstance(insns, int) else "-"
        wall = f"{seconds:.2f}" if isinstance(seconds, float) else "-"
        rate = "-" if mips is None else (f"({mips:.1f})" if paren else f"{mips:.1f}")
        return f"{count:>15} {wall:>8} {rate:>9}"

    print(f"  {'':<9}{' to the shell prompt ':-^34}   {' whole session ':-^34}")
    print(
        f"  {'side':<9}{'instructions':>15} {'wall s':>8} {'MIPS':>9}   {'instructions':>15} {'wall s':>8} {'MIPS':>9}"
    )
    for side in sides:
        print(
            f"  {side['name']:<9}{cell(side['prompt_instructions'], side['prompt_seconds'], side['prompt_mips'])}   "
            f"{cell(side['instructions'], side['seconds'], side['mips'])}"
        )
    qemu: dict | None = report["qemu"]  # type: ignore[assignment,type-arg]
    if qemu is not None:
        print(
            f"  {'qemu-tcg':<9}{cell(None, qemu['prompt_seconds'], qemu['prompt_mips'], True)}   "
            f"{cell(None, qemu['seconds'], qemu['mips'], True)}"
        )
    print(
        f"  record time / run time = {report['record_time_vs_run']}, "
        f"replay time / run time = {report['replay_time_vs_run']}"
    )
    if qemu is None:
        print(f"  (no QEMU side: {report['qemu_absent']})")
        return 0
    run = sides[0]
    if qemu["prompt_seconds"]:
        print(
            f"  ReplayVM run / QEMU TCG wall time to the prompt = {run['prompt_seconds'] / qemu['prompt_seconds']:.2f}"
        )
    if not qemu["finished"]:
        print("  QEMU did not finish the session (see `replayvm bench --linux --json` for its command)")
    print(
        "  QEMU does not count instructions: its MIPS (in parentheses) are ReplayVM's instruction counts divided\n"
        "  by QEMU's wall time, which also includes SeaBIOS and the real-time waits ReplayVM skips in virtual time."
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from replayvm.guests import catalog
    from replayvm.machine import Machine, MachineConfig

    if args.linux:
        return cmd_demo_linux(args)
    if args.input is not None or args.output is not None:
        raise ConfigError("--input and -o apply to `replayvm demo --linux`")
    image, name, cmdline = resolve_image("demo")
    print("ReplayVM demo: booting the bundled `demo` guest (a PVH kernel) on the Unicorn CPU engine.")
    print("Everything it prints comes through an emulated 16550 UART, one VM exit per byte.\n")
    sys.stdout.flush()
    machine = Machine(MachineConfig(64, cmdline or ""), image, serial_out=_write_stdout, image_name=name)
    t0 = monotonic()
    result = machine.run()
    seconds = monotonic() - t0
    print()
    print(_summary(result, seconds))
    exits = result.exits
    print("\nVM exits by reason (what KVM would report):")
    for reason, n in sorted(exits["by_reason"].items(), key=lambda kv: -kv[1]):  # type: ignore[union-attr]
        print(f"  {reason:<20} {n:>8}")
    ports = sorted(exits["io_ports"].items(), key=lambda kv: -kv[1])[:6]  # type: ignore[union-attr]
    print("Busiest I/O ports:")
    for port, n in ports:
        print(f"  {port:<20} {n:>8}")
    print(
        "\nThe run is deterministic: time is the instruction count, so running it again gives the same\n"
        "output and the same final state. Try `replayvm guests` and `replayvm run timer`."
    )
    expected = catalog.get("demo").exit_status
    if result.status != expected:
        print(f"replayvm: demo guest ended unexpectedly: {result.message}", file=sys.stderr)
        return 1
    return 0


# How `demo --linux` ends when the session went as it should: `exit` (init
# resets through the i8042), `poweroff -f` (no ACPI: Linux halts), Ctrl-C.
DEMO_LINUX_ENDS = frozenset({"reset", "halted", "interrupted", "idle"})


def cmd_demo_linux(args: argparse.Namespace) -> int:
    """Debian's kernel + a busybox shell on the terminal, recorded (issue 10)."""
    import shlex

    from replayvm.guests import linux_assets
    from replayvm.guests.initramfs import SHELL_INIT, build_initramfs
    from replayvm.machine import MachineConfig
    from replayvm.session.recorder import Recorder

    assets = linux_assets.find_assets() or _fetch_linux()
    kernel = _read_file(str(assets.vmlinuz), "the kernel")
    try:
        initrd = build_initramfs(_read_file(str(assets.busybox), "busybox"), SHELL_INIT)
    except ValueError as e:
        raise ConfigError(f"{assets.busybox}: {e}") from None
    output = args.output or "linux-demo.rvr"
    config = MachineConfig(linux_assets.MEMORY_MIB, linux_assets.APPEND, initrd)
    host = Host(_serial_source(args.input, terminal=True))
    print(f"ReplayVM demo: Debian's {assets.kernel_package} and a busybox shell, recorded to {output}.")
    print(
        f"The kernel boots unmodified (--append {linux_assets.APPEND!r}) on the Unicorn CPU engine in about\n"
        "1.4e9 instructions; everything below comes through the emulated 16550 UART (ttyS0)."
    )
    if args.input is not None:
        print(f"Input: {args.input}, typed a line at a time at the prompt.\n")
    else:
        print("At the `~ #` prompt, type commands; `exit` ends the session, Ctrl-C stops the recording at once.\n")
    sys.stdout.flush()
    try:
        recorder = Recorder(output, kernel, config, host=host, serial_out=_write_stdout, image_name=str(assets.vmlinuz))
    except OSError as e:
        host.close()
        raise ConfigError(f"cannot write {output}: {e.strerror}") from None
    result, seconds = _run_recorder(recorder, host)
    ends = {
        "reset": "the shell exited and init rebooted (reboot -f): end of the session",
        "halted": "Linux halted the CPU (poweroff: this machine has no ACPI to power off): end of the session",
        "interrupted": "recording stopped by Ctrl-C",
    }
    print(f"\nreplayvm: {ends.get(result.reason, result.message)}", file=sys.stderr)
    print(_summary(result, seconds), file=sys.stderr)
    size = Path(output).stat().st_size
    path = shlex.quote(output)
    late = max(0, result.icount - 1_000_000)
    print(f"\nRecorded {result.icount} instructions to {output} ({size >> 20} MiB, kernel and initramfs included).")
    print("Replay it, byte for byte (nothing else needed: the kernel, initramfs and your input are in the file):")
    print(f"    replayvm replay {path}")
    print("Debug it, forwards and backwards, inside the kernel:")
    print(f"    replayvm debug {path}")
    print(f"    (rvdb) goto {late}")
    print("    (rvdb) info registers rip")
    print("    (rvdb) reverse-stepi")
    print("    (rvdb) x/8gx $rsp")
    print(f"Where its VM exits went: replayvm stats {path}")
    return 0 if result.reason in DEMO_LINUX_ENDS else result.status


def cmd_debug(args: argparse.Namespace) -> int:
    from replayvm.debugger.app import DebugOptions, debug_recording, is_recording, record_and_debug

    options = DebugOptions(tuple(args.scripts), args.batch, args.checkpoint_memory << 20, args.debug)
    if is_recording(args.target) or args.target.endswith(".rvr"):
        recording_only = ("cmdline", "initrd", "input", "max_insns", "output")
        extra = [f"--{n}" for n in recording_only if getattr(args, n) is not None]
        if extra:
            raise ConfigError(f"{extra[0].replace('_', '-')} applies only when recording an image, not to a recording")
        return debug_recording(args.target, options)
    image, name, default_cmdline = resolve_image(args.target)
    cmdline = args.cmdline if args.cmdline is not None else (default_cmdline or "")
    # Guest input comes from --input or a terminal; a pipe on stdin carries debugger commands.
    try:
        terminal = sys.stdin is not None and os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):
        terminal = False
    source = _serial_source(args.input, terminal=True) if args.input is not None or terminal else SerialSource()
    return record_and_debug(
        image,
        name,
        _machine_config(args, cmdline),
        _host(args, source),
        options,
        output=args.output,
        max_insns=args.max_insns,
        quiet=args.quiet,
    )


def _machine_config(args: argparse.Namespace, cmdline: str):  # type: ignore[no-untyped-def]
    """The machine the options describe; reads --initrd and --disk. A bundled
    guest gets the virtio devices it needs unless --virtio says otherwise."""
    from replayvm.guests import catalog
    from replayvm.machine import VIRTIO_KINDS, MachineConfig

    initrd = _read_option_file(args, "initrd")
    disk = _read_option_file(args, "disk")
    spec = getattr(args, "image", None) or getattr(args, "target", None)
    guest = next((g for g in catalog.all_guests() if g.name == spec and not Path(spec).is_file()), None)
    if getattr(args, "virtio", None) is not None:
        virtio = tuple(k for k in args.virtio.split(",") if k)
        bad = [k for k in virtio if k not in VIRTIO_KINDS]
        if bad:
            raise ConfigError(f"--virtio: unknown device {bad[0]!r} (devices: {', '.join(VIRTIO_KINDS)})")
    else:
        virtio = guest.virtio if guest is not None else (("blk",) if disk is not None else ())
    if "blk" in virtio and disk is None and guest is not None:
        disk = bytes(catalog.VIRTIO_DISK_BYTES)  # the bundled guests' scratch disk
    net = "host" if (getattr(args, "net", None) or "user").startswith("udp:") else "user"
    return MachineConfig(args.memory, cmdline, initrd, virtio=virtio, disk=disk, net=net)


def _host(args: argparse.Namespace, source: SerialSource) -> Host:
    """The live host: serial input, and the UDP tunnel of ``--net udp:...``."""
    tunnel = None
    net = getattr(args, "net", None) or "user"
    if net.startswith("udp:"):
        try:
            local, remote = parse_udp_tunnel(net[4:])
            tunnel = UdpTunnel(local, remote)
        except (ValueError, OSError) as e:
            raise ConfigError(f"--net {net}: {e}") from None
    elif net != "user":
        raise ConfigError(f"--net {net}: expected user or udp:LOCALPORT:REMOTEHOST:REMOTEPORT")
    return Host(source, tunnel=tunnel)


def _pcap_writer(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """``--net-pcap FILE``: every frame the guest sends or receives, stamped with virtual time."""
    from replayvm.virtio.pcap import pcap_header, pcap_record

    path = getattr(args, "net_pcap", None)
    if path is None:
        return None
    try:
        out = open(path, "wb")  # noqa: SIM115 - written until the process ends
        out.write(pcap_header())
    except OSError as e:
        raise ConfigError(f"cannot write --net-pcap {path}: {e.strerror}") from None

    def capture(frame: bytes, time_ns: int) -> None:
        out.write(pcap_record(frame, time_ns))
        out.flush()

    return capture


def _read_option_file(args: argparse.Namespace, name: str) -> bytes | None:
    value = getattr(args, name, None)
    if value is None:
        return None
    try:
        return Path(value).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read --{name} {value}: {e.strerror}") from None


def _engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("native", "count"),
        default=None,
        help="instruction counting: native (a C block hook, default where built) or count (Unicorn's count mode); "
        "recordings replay with either",
    )


def _machine_options(p: argparse.ArgumentParser) -> None:
    _engine_option(p)
    p.add_argument("--memory", type=_positive_int, default=64, metavar="MiB", help="guest RAM (default 64)")
    p.add_argument("--cmdline", "--append", dest="cmdline", default=None, metavar="STR", help="kernel command line")
    p.add_argument("--initrd", default=None, metavar="FILE", help="initial ramdisk for a Linux bzImage")
    p.add_argument("--input", default=None, metavar="FILE", help="bytes for the serial port (default: stdin)")
    p.add_argument(
        "--virtio",
        default=None,
        metavar="LIST",
        help="virtio-mmio devices, e.g. blk,net,console,rng (net: a built-in gateway 10.0.2.2 answering ARP and "
        "ping; console: takes stdin/stdout instead of the UART)",
    )
    p.add_argument(
        "--disk", default=None, metavar="FILE", help="raw disk image for virtio-blk (embedded in recordings)"
    )
    p.add_argument(
        "--net",
        default=None,
        metavar="BACKEND",
        help="virtio-net back-end: user (default: a built-in gateway 10.0.2.2 answering ARP and ping) or "
        "udp:LOCALPORT:REMOTEHOST:REMOTEPORT (one Ethernet frame per datagram, like QEMU -netdev dgram)",
    )
    p.add_argument("--net-pcap", default=None, metavar="FILE", help="write the guest's network traffic as pcap")
    p.add_argument(
        "--disk-writable",
        action="store_true",
        help="write the guest's disk writes back to --disk at the end (default: a copy-on-write overlay)",
    )
    p.add_argument(
        "--max-insns", type=_positive_int, default=None, metavar="N", help="stop after N instructions (exit status 124)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replayvm", description="Record-and-replay x86-64 virtual machine.")
    p.add_argument("--version", action="version", version=f"replayvm {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run", help="boot a guest kernel", description="Boot a PVH guest kernel; its serial output goes to stdout."
    )
    run.add_argument("image", metavar="IMAGE", help="path to a PVH ELF kernel or a bundled guest name")
    _machine_options(run)
    run.set_defaults(func=cmd_run)

    rec = sub.add_parser(
        "record", help="run a guest and record it", description="Run a guest like `run` and record it to a .rvr file."
    )
    rec.add_argument("image", metavar="IMAGE", help="path to a PVH ELF kernel or a bundled guest name")
    rec.add_argument("-o", "--output", metavar="FILE.rvr", help="recording file (default: IMAGE-NAME.rvr)")
    rec.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="KIND[=VALUE]",
        help="store what you saw, checked on every replay: status, reason, output, output-contains=TEXT, "
        "crash-at[=SYMBOL], final=EXPR (no VALUE: take it from this run)",
    )
    rec.add_argument("--note", metavar="TEXT", help="free text stored with the recording (the bug report)")
    rec.add_argument(
        "--sync-interval",
        type=_positive_int,
        default=None,
        metavar="N",
        help="instructions between state digests (default 16777216); smaller finds a divergence closer",
    )
    _machine_options(rec)
    rec.set_defaults(func=cmd_record)

    rep = sub.add_parser("replay", help="replay a recording", description="Replay a .rvr recording and verify it.")
    rep.add_argument("recording", metavar="FILE.rvr")
    rep.add_argument("--verify", action="store_true", help="print every digest comparison")
    _engine_option(rep)
    rep.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    rep.set_defaults(func=cmd_replay)

    info = sub.add_parser("info", help="describe a recording", description="Describe a .rvr recording.")
    info.add_argument("recording", metavar="FILE.rvr")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)

    stats = sub.add_parser(
        "stats",
        help="where a recording's VM exits went",
        description="Replay a recording and count its VM exits by reason, device and phase (POST codes on port 0x80).",
    )
    stats.add_argument("recording", metavar="FILE.rvr")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=cmd_stats)

    trim = sub.add_parser(
        "trim",
        help="cut a recording to start near the interesting part",
        description="Write a recording that starts from a snapshot at ICOUNT and replays to the same end.",
    )
    trim.add_argument("recording", metavar="FILE.rvr")
    trim.add_argument("--from", dest="start", type=_positive_int, required=True, metavar="ICOUNT")
    trim.add_argument("-o", "--output", required=True, metavar="OUT.rvr")
    trim.set_defaults(func=cmd_trim)

    guests = sub.add_parser(
        "guests",
        help="list the bundled guests; build a Linux initramfs, fetch a Linux kernel",
        description="Without an action: list the bundled guest kernels.",
    )
    guests.set_defaults(func=cmd_guests)
    actions = guests.add_subparsers(dest="guests_action", metavar="ACTION")
    initramfs = actions.add_parser(
        "build-initramfs",
        help="write a busybox initramfs (newc cpio) for a Linux guest",
        description="Write a newc cpio the kernel unpacks as its initramfs: /bin/busybox with its applets as "
        "symlinks, /dev/console, and an /init script.",
    )
    initramfs.add_argument(
        "--busybox",
        metavar="PATH",
        help="a static busybox binary (default: the one `replayvm guests fetch-linux` downloaded)",
    )
    initramfs.add_argument(
        "--init",
        metavar="FILE",
        help="the /init script (default: the test init: mount proc and sys, print cpuinfo, uname and an awk sum, "
        "run a shell, then reboot -f)",
    )
    initramfs.add_argument(
        "-o", "--output", default="initramfs.cpio", metavar="FILE", help="where to write it (default initramfs.cpio)"
    )
    initramfs.set_defaults(func=cmd_guests_build_initramfs)
    fetch = actions.add_parser(
        "fetch-linux",
        help="download Debian's cloud kernel and busybox-static (apt-get download)",
        description="Download Debian's linux-image-cloud-amd64 kernel and busybox-static with apt-get download, "
        "extract vmlinuz and busybox, and build the test initramfs. Does nothing if they are already there.",
    )
    fetch.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to keep them (default $REPLAYVM_LINUX_DIR or ~/.cache/replayvm/linux)",
    )
    fetch.add_argument("--force", action="store_true", help="download again even if they are present")
    fetch.set_defaults(func=cmd_guests_fetch_linux)

    bench = sub.add_parser(
        "bench", help="ReplayVM against bare Unicorn on the compute guest; --linux: against QEMU on Linux"
    )
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument(
        "--timeline", action="store_true", help="time-travel costs on a ~1e9-instruction recording (about 20 s)"
    )
    bench.add_argument("--cmdline", default=None, metavar="STR", help="compute guest command line (e.g. work=2)")
    bench.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help="runs of each side, each in a fresh process; the fastest counts (default 8, about 80 s: "
        "where a process's memory lands moves one run by up to 50%%)",
    )
    bench.add_argument(
        "--linux",
        action="store_true",
        help="Debian's kernel to the shell prompt and through a short session: run, record, replay and QEMU TCG "
        "(needs `replayvm guests fetch-linux`; about 30 s: run, record and replay take ~8 s each)",
    )
    bench.add_argument("--no-qemu", action="store_true", help="with --linux: leave out the QEMU side")
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser(
        "demo",
        help="boot the demo guest and explain what happened; --linux: a recorded Linux shell",
        description="Boot the bundled demo guest and explain its VM exits. With --linux: boot Debian's cloud "
        "kernel (downloaded with apt-get the first time) to a busybox shell on this terminal, record the session, "
        "and say how to replay it and debug it backwards.",
    )
    demo.add_argument("--linux", action="store_true", help="a Linux kernel + busybox shell, interactive and recorded")
    demo.add_argument("-o", "--output", metavar="FILE.rvr", help="with --linux: the recording (default linux-demo.rvr)")
    demo.add_argument(
        "--input", metavar="FILE", help="with --linux: type FILE's lines at the shell instead of the terminal"
    )
    demo.set_defaults(func=cmd_demo)

    dbg = sub.add_parser(
        "debug",
        help="time-travel debugger on a recording (or record a guest, then debug it)",
        description="Debug FILE.rvr forwards and backwards with gdb-like commands (type `help` at the prompt). "
        "Given a PVH image or bundled guest name instead, record it until it ends or Ctrl-C, "
        "then debug that recording from its end.",
    )
    dbg.add_argument("target", metavar="FILE.rvr|IMAGE", help="a recording, or an image to record first")
    dbg.add_argument(
        "-x", dest="scripts", action="append", default=[], metavar="SCRIPT", help="run debugger commands from SCRIPT"
    )
    dbg.add_argument("--batch", action="store_true", help="exit after the -x scripts (status 1 if a command failed)")
    dbg.add_argument(
        "--checkpoint-memory",
        type=_positive_int,
        default=256,
        metavar="MiB",
        help="memory for reverse-execution checkpoints (default 256)",
    )
    dbg.add_argument("-o", "--output", metavar="FILE.rvr", help="when recording IMAGE: keep the recording here")
    _machine_options(dbg)
    dbg.set_defaults(func=cmd_debug)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "engine", None):
        from replayvm.engine import icount

        icount.DEFAULT_ENGINE = args.engine
    try:
        return args.func(args)
    except ReplayVMError as e:
        if args.debug:
            raise
        print(f"replayvm: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print("replayvm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())

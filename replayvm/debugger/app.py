"""``replayvm debug``: open a recording, or record a guest first, then debug.

``replayvm debug FILE.rvr`` starts at icount 0, like rr. ``replayvm debug
IMAGE`` runs the guest under the Recorder until it ends (or Ctrl-C), then
opens the debugger at the end of what ran, so the way to go is backwards.
Commands come from ``-x`` scripts, then the prompt (a terminal) or stdin
(a pipe); ``--batch`` stops after the scripts. The exit status is 1 when a
command failed in a script or a pipe, else 0.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from replayvm.debugger.console import Console
from replayvm.debugger.debugger import Debugger
from replayvm.debugger.repl import Repl, history_path, run_script, run_stream
from replayvm.errors import ConfigError
from replayvm.host import Host
from replayvm.log.format import MAGIC
from replayvm.machine import MachineConfig
from replayvm.session.recorder import Recorder
from replayvm.session.timeline import DEFAULT_CHECKPOINT_MEMORY


@dataclass(frozen=True, slots=True)
class DebugOptions:
    scripts: tuple[str, ...] = ()
    batch: bool = False
    checkpoint_memory: int = DEFAULT_CHECKPOINT_MEMORY  # bytes
    debug: bool = False


def is_recording(path: str) -> bool:
    """A file that starts with the .rvr magic (anything else may be an image)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    except (ValueError, OSError):
        return False


def debug_recording(path: str | Path, options: DebugOptions, *, at_end: bool = False) -> int:
    if not Path(path).is_file():
        raise ConfigError(f"no such recording: {path}")
    console = Console()
    try:
        dbg = Debugger.open(path, console=console, checkpoint_memory=options.checkpoint_memory, debug=options.debug)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    session = dbg.session
    if not options.batch:
        _banner(dbg, path)
    if at_end:
        end = session.recorded_end
        dbg.move(lambda: session.seek(end if end is not None else 1 << 62))
    elif not options.batch:
        dbg.report(session.seek(0))
    ok = True
    for script in options.scripts:
        try:
            ok = run_script(dbg, script)
        except ConfigError as e:
            console.error(str(e))
            ok = False
        if not ok or dbg.quit_requested:
            break
    if options.batch or dbg.quit_requested:
        return 0 if ok else 1
    if _interactive():
        Repl(dbg, history=history_path()).run()
        return 0 if ok else 1
    return 0 if run_stream(dbg, sys.stdin) and ok else 1


def _banner(dbg: Debugger, path: str | Path) -> None:
    session = dbg.session
    config = session.replayer.reader.header.config
    end = session.replayer.end
    out = dbg.console
    out.line(
        f"ReplayVM debugger on {path}: image {config.get('image')}, {config.get('memory_mib')} MiB, "
        f"cmdline {config.get('cmdline')!r}"
    )
    if end is not None:
        out.line(f"The recording runs {end.icount} instructions and ends by {end.reason} (status {end.status}).")
    else:
        out.line("The recording is incomplete (no END record): it replays up to its last complete chunk.")
    if len(dbg.symbols):
        lines = "with line information" if dbg.lines else "no line information"
        out.line(f"{len(dbg.symbols)} symbols from the kernel image ({lines}).")
    else:
        out.line(f"No symbols: {dbg.symbols.problem}; addresses only.")
    out.line('Type "help" for the commands; Ctrl-C stops a running command, Ctrl-D quits.')


def record_and_debug(
    image: bytes,
    name: str,
    config: MachineConfig,
    host: Host,
    options: DebugOptions,
    *,
    output: str | None = None,
    max_insns: int | None = None,
    quiet: bool = False,
) -> int:
    """Record ``image`` until it ends or Ctrl-C, then debug the recording from its end."""
    tmpdir = None
    if output is None:
        tmpdir = tempfile.mkdtemp(prefix="replayvm-debug-")
        path = Path(tmpdir) / f"{Path(name).stem or 'guest'}.rvr"
    else:
        path = Path(output)
    try:
        _record(path, image, name, config, host, max_insns, quiet)
        return debug_recording(path, options, at_end=True)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _record(
    path: Path, image: bytes, name: str, config: MachineConfig, host: Host, max_insns: int | None, quiet: bool
) -> None:
    console = Console()
    try:
        recorder = Recorder(path, image, config, host=host, serial_out=console.guest_output, image_name=name)
    except OSError as e:
        host.close()
        raise ConfigError(f"cannot write {path}: {e.strerror}") from None

    def on_sigint(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C kills
        recorder.machine.request_stop("interrupted", 130, "recording stopped by Ctrl-C")

    if not quiet:
        print(f"replayvm: recording {name}; Ctrl-C stops it and opens the debugger", file=sys.stderr)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = recorder.run(max_insns=max_insns)
    finally:
        signal.signal(signal.SIGINT, previous)
        host.close()
    console.end_line()
    if not quiet:
        print(f"replayvm: {result.message}; recorded {result.icount} instructions to {path}", file=sys.stderr)

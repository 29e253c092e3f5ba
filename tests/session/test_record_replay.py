"""Record -> replay is exact (DESIGN.md §1, §4): same output, status, digests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from replayvm.errors import DivergenceError
from replayvm.guests import catalog
from replayvm.log import FORMAT_VERSION, RecordingReader, RecordingWriter, SerialInput
from replayvm.session.recording import SYNC_INTERVAL
from replayvm.session.replayer import Replayer
from tests.exe import EXE
from tests.session.conftest import record_guest

FAST_GUESTS = [g.name for g in catalog.GUESTS if g.name != "crc"]


def replay(path: Path, **kwargs: object) -> tuple[object, bytes]:
    out = bytearray()
    report = Replayer(path, serial_out=out.extend, **kwargs).run()  # type: ignore[arg-type]
    return report, bytes(out)


@pytest.mark.parametrize("name", FAST_GUESTS)
def test_replay_gives_same_output_status_and_final_digest(tmp_path: Path, name: str) -> None:
    rec = tmp_path / f"{name}.rvr"
    result, out = record_guest(rec, name)
    report, replay_out = replay(rec)
    assert replay_out == out
    assert report.result.status == result.status == catalog.expected_status(name)  # type: ignore[attr-defined]
    assert report.complete  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["echo", "timer"])
def test_replay_in_a_fresh_process_needs_only_the_recording(tmp_path: Path, name: str) -> None:
    rec = tmp_path / "r.rvr"
    result, out = record_guest(rec, name)
    moved = tmp_path / "elsewhere" / "bug.rvr"
    moved.parent.mkdir()
    rec.rename(moved)
    proc = subprocess.run(
        [*EXE, "replay", str(moved), "--verify"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        cwd=moved.parent,
        timeout=120,
    )
    assert proc.stdout == out
    assert proc.returncode == result.status
    assert b"replay matched the recording" in proc.stderr
    assert b"MISMATCH" not in proc.stderr


def test_periodic_syncs_are_checked(tmp_path: Path) -> None:
    rec = tmp_path / "demo.rvr"
    record_guest(rec, "demo", sync_interval=50_000)
    report, _ = replay(rec)
    assert report.syncs_checked > 10  # type: ignore[attr-defined]


def tamper_first_input(src: Path, dst: Path, index: int) -> int:
    """Rewrite a recording with one logged input byte changed (the writer computes fresh CRCs)."""
    with RecordingReader(src) as reader:
        events = list(reader.events())
        blobs = [(name, reader.blob(name)) for name in reader.blobs]
        config, end = reader.header.config, reader.end
    inputs = [i for i, e in enumerate(events) if isinstance(e, SerialInput)]
    victim = events[inputs[index]]
    assert isinstance(victim, SerialInput)
    flipped = bytes([victim.data[0] ^ 0x20]) + victim.data[1:]
    events[inputs[index]] = SerialInput(victim.icount, victim.device, flipped)
    writer = RecordingWriter(dst, config, blobs, fsync=False)
    for e in events:
        writer.append(e)
    assert end is not None
    writer.close(end)
    return victim.icount


def test_tampered_input_byte_is_caught_at_the_first_sync_after_it(tmp_path: Path) -> None:
    rec, bad = tmp_path / "echo.rvr", tmp_path / "tampered.rvr"
    record_guest(rec, "echo", sync_interval=2_000)
    tampered_at = tamper_first_input(rec, bad, index=3)
    syncs = [e.icount for e in RecordingReader(bad).events() if type(e).__name__ == "Sync"]
    first_after = min(s for s in syncs if s > tampered_at)
    with pytest.raises(DivergenceError) as err:
        replay(bad)
    message = str(err.value)
    assert f"diverged at icount {first_after}" in message
    assert "expected RIP" in message and "serial-input" in message


def test_tampered_recording_fails_replay_with_status_3(tmp_path: Path) -> None:
    rec, bad = tmp_path / "echo.rvr", tmp_path / "tampered.rvr"
    record_guest(rec, "echo")
    tamper_first_input(rec, bad, index=0)
    proc = subprocess.run([*EXE, "replay", str(bad)], stdin=subprocess.DEVNULL, capture_output=True, check=False)
    assert proc.returncode == 3
    err = proc.stderr.decode()
    assert "diverged" in err and "Traceback" not in err


def test_echo_recorded_from_a_pipe_replays_without_input(tmp_path: Path) -> None:
    rec = tmp_path / "echo.rvr"
    proc = subprocess.run(
        [*EXE, "record", "echo", "-o", str(rec), "-q"],
        input=b"typed into a pipe\nquit\n",
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert b"echo: typed into a pipe" in proc.stdout
    replayed = subprocess.run(
        [*EXE, "replay", str(rec), "-q"], stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=120
    )
    assert replayed.stdout == proc.stdout
    assert replayed.returncode == proc.returncode == catalog.expected_status("echo")


def test_timers_cost_nothing_in_the_log(tmp_path: Path) -> None:
    """Virtual time: 20 s of 1 kHz timer interrupts log no events beyond the fixed ones."""
    rec = tmp_path / "timer.rvr"
    result, _ = record_guest(rec, "timer", cmdline="ticks=20000 hz=1000")
    summary = RecordingReader(rec).summary()
    assert result.vtime_ns >= 19 * 10**9
    assert summary.event_counts.get("serial-input", 0) == 0
    assert summary.event_stored_bytes < 4096


@pytest.mark.slow
def test_long_compute_run_logs_under_4_kib(tmp_path: Path) -> None:
    rec = tmp_path / "crc.rvr"
    result, _ = record_guest(rec, "crc")
    assert result.icount > 10**8
    summary = RecordingReader(rec).summary()
    assert summary.event_stored_bytes < 4096
    report, _ = replay(rec)
    assert report.syncs_checked >= result.icount // SYNC_INTERVAL + 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["blk", "net", "rng", "console"])
def test_virtio_guest_records_and_replays_bit_exactly(tmp_path: Path, name: str) -> None:
    guest = catalog.get(name)
    rec = tmp_path / f"{name}.rvr"
    args = [*EXE, "record", name, "-o", str(rec), "-q"]
    if guest.console_input_path is not None:
        args += ["--input", str(guest.console_input_path)]
    recorded = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=120)
    assert recorded.returncode == guest.exit_status, recorded.stderr
    replayed = subprocess.run(
        [*EXE, "replay", str(rec)], stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=120
    )
    assert replayed.stdout == recorded.stdout
    assert replayed.returncode == recorded.returncode
    assert b"replay matched the recording" in replayed.stderr
    with RecordingReader(rec) as reader:
        counts = reader.summary().event_counts
        blobs = set(reader.blobs)
    if name == "rng":
        assert counts.get("entropy", 0) >= 1  # host entropy is a logged input
    if name == "blk":
        assert "disk0" in blobs  # the disk travels with the recording


def test_stats_shows_paravirtual_io_exits_far_less_per_kib(tmp_path: Path) -> None:
    import json

    rec = tmp_path / "uvv.rvr"
    recorded = subprocess.run(
        [*EXE, "record", "uart-vs-virtio", "-o", str(rec), "-q"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert recorded.returncode == catalog.expected_status("uart-vs-virtio")
    proc = subprocess.run([*EXE, "stats", str(rec), "--json"], capture_output=True, check=True, timeout=120)
    stats = json.loads(proc.stdout)
    phases = {p["phase"]: p for p in stats["phases"]}
    uart = phases["post 0x01"]["uart"]
    console = phases["post 0x02"]["virtio"]["virtio-console@0xd0000000"]
    assert uart["bytes"] >= 4096 and console["bytes_in"] + console["bytes_out"] == 4096
    assert uart["exits_per_kib"] >= 100 * console["exits_per_kib"]
    text = subprocess.run([*EXE, "stats", str(rec)], capture_output=True, check=True, timeout=120).stdout.decode()
    assert "exits/KiB" in text and "phase post 0x02" in text


def udp_echo_reply(frame: bytes) -> bytes:
    """The reply of a UDP echo service at 10.0.2.2 to an IPv4 UDP frame."""
    eth, ip, udp = frame[:14], bytearray(frame[14:34]), bytearray(frame[34:])
    ip[12:16], ip[16:20] = ip[16:20], ip[12:16]
    ip[10:12] = b"\0\0"
    words = sum(int.from_bytes(ip[i : i + 2], "big") for i in range(0, 20, 2))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    ip[10:12] = (~words & 0xFFFF).to_bytes(2, "big")
    udp[0:2], udp[2:4] = udp[2:4], udp[0:2]
    return eth[6:12] + b"\x52\x55\x0a\x00\x02\x02" + eth[12:14] + bytes(ip) + bytes(udp)


def test_net_through_a_udp_tunnel_records_real_traffic_and_replays_without_it(tmp_path: Path) -> None:
    """A local peer plays the gateway over UDP (QEMU -netdev dgram framing: one frame per
    datagram); the replay has no peer and gets the frames from the recording."""
    import socket
    import threading

    from replayvm.virtio.pcap import parse_pcap
    from replayvm.virtio.responder import Responder

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(0.2)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    vm_port = probe.getsockname()[1]
    probe.close()
    stop = threading.Event()
    gateway = Responder()
    served: list[int] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                frame, addr = peer.recvfrom(65535)
            except TimeoutError:
                continue
            if len(frame) >= 42 and frame[12:14] == b"\x08\x00" and frame[23] == 17 and frame[36:38] == b"\x00\x07":
                peer.sendto(udp_echo_reply(frame), addr)  # the UDP echo service (port 7) of the gateway
                served.append(len(frame))
                continue
            gateway.transmit(frame)
            while (reply := gateway.peek_rx()) is not None:
                gateway.pop_rx()
                peer.sendto(reply, addr)
                served.append(len(reply))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    rec, pcap = tmp_path / "net.rvr", tmp_path / "net.pcap"
    try:
        recorded = subprocess.run(
            [
                *EXE,
                "record",
                "net",
                "-o",
                str(rec),
                "-q",
                "--net",
                f"udp:{vm_port}:127.0.0.1:{peer.getsockname()[1]}",
                "--net-pcap",
                str(pcap),
                "--cmdline",
                "udp=7",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=120,
        )
    finally:
        stop.set()
        thread.join(timeout=5)
        peer.close()
    assert recorded.returncode == catalog.expected_status("net"), recorded.stderr
    expected = catalog.expected_output("net") + "net: udp echo from 10.0.2.2:7: 30 bytes, payload matches\n"
    assert catalog.deterministic_lines(recorded.stdout) == expected
    assert len(served) == 5  # the ARP reply, three echo replies and the UDP echo crossed a real socket
    _, frames = parse_pcap(pcap.read_bytes())
    assert len(frames) == 10  # five out, five in
    with RecordingReader(rec) as reader:
        assert reader.summary().event_counts.get("net-rx") == 5
    replayed = subprocess.run(
        [*EXE, "replay", str(rec)], stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=120
    )
    assert replayed.stdout == recorded.stdout
    assert b"replay matched the recording" in replayed.stderr


def test_format_1_recordings_replay_with_the_full_ram_digest() -> None:
    # Format 1's END digest hashed every byte of RAM; format 2's hashes the
    # chunks that are not zero. recordings/ holds format-1 files.
    old = Path(__file__).parents[2] / "recordings" / "hello.rvr"
    assert RecordingReader(old).header.format_version == 1
    replayer = Replayer(old)
    report = replayer.run()  # raises DivergenceError if the END digest differs
    assert report.complete and report.end is not None
    machine = replayer.machine
    assert report.end.digest == machine.state_digest(ram=True, full_ram=True) != machine.state_digest(ram=True)


def test_new_recordings_end_with_the_sparse_ram_digest(tmp_path: Path) -> None:
    rec = tmp_path / "hello.rvr"
    record_guest(rec, "hello")
    reader = RecordingReader(rec)
    assert reader.header.format_version == FORMAT_VERSION == 2
    replayer = Replayer(rec)
    report = replayer.run()
    assert report.complete and report.end is not None
    machine = replayer.machine
    assert report.end.digest == machine.state_digest(ram=True) != machine.state_digest(ram=True, full_ram=True)

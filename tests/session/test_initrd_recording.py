"""A Linux machine's initrd travels in the recording like the kernel does."""

from __future__ import annotations

from pathlib import Path

import pytest

from replayvm.errors import TraceFormatError
from replayvm.log import RecordingReader, RecordingWriter
from replayvm.machine import MachineConfig
from replayvm.session.recorder import Recorder
from replayvm.session.recording import INITRD_BLOB, KERNEL_BLOB, RecordedSession
from replayvm.session.replayer import Replayer
from tests.bzimage import EXIT_WITH_INITRD_BYTE, make_bzimage

INITRD = b"\x21" + bytes(5000)


def record(path: Path, initrd: bytes | None) -> None:
    config = MachineConfig(64, "console=ttyS0", initrd)
    Recorder(path, make_bzimage(EXIT_WITH_INITRD_BYTE), config, fsync=False).run(max_insns=10_000)


def test_initrd_is_a_blob_and_its_presence_is_in_the_header(tmp_path: Path) -> None:
    record(tmp_path / "r.rvr", INITRD)
    with RecordingReader(tmp_path / "r.rvr") as reader:
        assert reader.blob(INITRD_BLOB) == INITRD
        assert reader.header.config["initrd"] is True
        assert reader.end is not None and reader.end.status == (0x21 << 1) | 1


def test_replay_feeds_the_recorded_initrd_back(tmp_path: Path) -> None:
    record(tmp_path / "r.rvr", INITRD)
    report = Replayer(tmp_path / "r.rvr").run()
    assert report.complete and report.result.status == (0x21 << 1) | 1


def test_machine_without_initrd_records_none(tmp_path: Path) -> None:
    path = tmp_path / "r.rvr"
    Recorder(path, make_bzimage(), MachineConfig(64, ""), fsync=False).run(max_insns=1000)
    with RecordingReader(path) as reader:
        assert INITRD_BLOB not in reader.blobs and reader.header.config["initrd"] is False


def test_header_that_promises_an_initrd_without_the_blob_is_refused(tmp_path: Path) -> None:
    config = RecordedSession(MachineConfig(64, "", b"x"), "k", 1 << 21).to_config()
    path = tmp_path / "r.rvr"
    RecordingWriter(path, config, [(KERNEL_BLOB, make_bzimage())], fsync=False).flush()
    with pytest.raises(TraceFormatError, match="initrd"):
        Replayer(path)

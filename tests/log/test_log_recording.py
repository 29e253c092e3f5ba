"""Writing and reading whole recordings: header, blobs, chunks, END."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import lz4.frame
import pytest
from rvr_helpers import SAMPLE_END, frame, header_frame, preamble, sample_events

from replayvm import __version__
from replayvm.errors import TraceFormatError
from replayvm.log import (
    FORMAT_VERSION,
    End,
    Entropy,
    RecordingReader,
    RecordingWriter,
    SerialInput,
    Sync,
)

CONFIG = {
    "memory_mib": 64,
    "cmdline": "console=ttyS0 nolapic noapic",
    "devices": [{"kind": "uart16550", "port": 0x3F8, "irq": 4}],
    "cpuid_model": "ReplayVM rv-pc",
    "engine": "unicorn",
    "ratio": 1.5,
    "debug": None,
}
KERNEL = b"\x7fELF" + bytes(range(256)) * 64
INITRD = b"070701" + b"busybox" * 500


def record(events=(), end=SAMPLE_END, blobs=(("kernel", KERNEL), ("initrd", INITRD)), **kw):
    buf = io.BytesIO()
    writer = RecordingWriter(buf, CONFIG, list(blobs), **kw)
    for event in events:
        writer.append(event)
    if end is None:
        writer.flush()  # an incomplete file: chunks written, no END
    else:
        writer.close(end)
    return buf.getvalue(), writer


def test_header_round_trips_versions_and_config():
    data, _ = record(unicorn_version="2.1.4")
    header = RecordingReader(data).header
    assert header.format_version == FORMAT_VERSION == 2
    assert header.replayvm_version == __version__
    assert header.unicorn_version == "2.1.4"
    assert header.config == CONFIG


def test_blobs_round_trip_with_table_metadata():
    data, _ = record()
    reader = RecordingReader(data)
    assert list(reader.blobs) == ["kernel", "initrd"]
    info = reader.blobs["kernel"]
    assert (info.size, info.sha256) == (len(KERNEL), hashlib.sha256(KERNEL).hexdigest())
    assert info.stored_size < info.size
    assert reader.blob("kernel") == KERNEL
    assert reader.blob("initrd") == INITRD


def test_a_blob_whose_contents_do_not_match_its_sha256_is_refused():
    payload = b"kernel bytes"
    packed = lz4.frame.compress(payload)
    table = [{"name": "kernel", "size": len(payload), "sha256": "0" * 64}]
    data = preamble() + header_frame(blobs=table) + frame(b"B", packed, codec=2, raw_len=12)
    reader = RecordingReader(data)
    with pytest.raises(TraceFormatError, match="SHA-256 mismatch"):
        reader.blob("kernel")


def test_asking_for_a_blob_the_file_lacks_is_a_trace_format_error():
    data, _ = record()
    with pytest.raises(TraceFormatError, match=r"no blob 'disk0' \(it has: kernel, initrd\)"):
        RecordingReader(data).blob("disk0")


def test_every_event_kind_round_trips_through_a_file():
    events = sample_events()
    data, _ = record(events)
    reader = RecordingReader(data)
    assert list(reader.events()) == events
    assert reader.complete and reader.end == SAMPLE_END and reader.truncated_at is None


def test_recording_round_trips_through_a_path(tmp_path):
    path = tmp_path / "run.rvr"
    with RecordingWriter(path, CONFIG, [("kernel", KERNEL)], chunk_events=2) as writer:
        for event in sample_events():
            writer.append(event)
        writer.close(SAMPLE_END)
    assert writer.bytes_written == path.stat().st_size
    with RecordingReader(path) as reader:
        assert list(reader.events()) == sample_events()
        assert reader.blob("kernel") == KERNEL
        assert reader.complete


def test_events_are_chunked_every_chunk_events():
    events = [Sync(i * 10, i, bytes(16)) for i in range(10)]
    data, writer = record(events, chunk_events=4)
    reader = RecordingReader(data)
    assert [c.count for c in reader.chunks] == [4, 4, 2]
    assert [c.first_icount for c in reader.chunks] == [0, 40, 80]
    assert writer.chunks_written == 3
    assert list(reader.events()) == events


def test_events_are_chunked_when_chunk_bytes_is_reached():
    events = [Entropy(i, bytes(100)) for i in range(10)]
    data, _ = record(events, chunk_bytes=250)
    assert [c.count for c in RecordingReader(data).chunks] == [3, 3, 3, 1]


def test_flush_writes_pending_events_as_one_chunk_and_nothing_when_empty():
    buf = io.BytesIO()
    writer = RecordingWriter(buf, CONFIG)
    writer.append(SerialInput(5, 0x3F8, b"a"))
    writer.flush()
    size = len(buf.getvalue())
    writer.flush()
    assert len(buf.getvalue()) == size
    assert [c.count for c in RecordingReader(buf.getvalue()).chunks] == [1]


def test_incompressible_chunks_are_stored_and_compressible_ones_use_lz4():
    random_data, _ = record([Entropy(0, os.urandom(4000))])
    zeros, _ = record([Entropy(0, bytes(4000))])
    assert RecordingReader(random_data).chunks[0].codec == 0
    assert RecordingReader(zeros).chunks[0].codec == 1


def test_writer_counts_bytes_and_events_by_kind():
    data, writer = record(sample_events())
    assert writer.bytes_written == len(data)
    assert writer.events_written == 7
    assert writer.event_counts == {
        "wall-clock": 1,
        "serial-input": 1,
        "entropy": 1,
        "net-rx": 1,
        "device-result": 1,
        "sync": 2,
    }


def test_summary_reports_counts_span_sizes_and_ratio():
    events = [Sync(1000 + i, i, bytes(16)) for i in range(500)]
    data, _ = record([*events, SerialInput(2000, 0x3F8, b"x")], chunk_events=100)
    summary = RecordingReader(data).summary()
    assert summary.events == 501 and summary.chunks == 6
    assert summary.event_counts["sync"] == 500 and summary.event_counts["serial-input"] == 1
    assert summary.event_counts["net-rx"] == 0
    assert (summary.first_icount, summary.last_icount) == (1000, 2000)
    assert summary.complete and summary.end == SAMPLE_END
    assert summary.file_size == len(data)
    assert summary.event_ratio > 2 and summary.blob_ratio > 2
    assert summary.blob_bytes == len(KERNEL) + len(INITRD)


def test_equal_inputs_give_byte_identical_files():
    assert record(sample_events())[0] == record(sample_events())[0]


def test_append_refuses_events_out_of_icount_order():
    buf = io.BytesIO()
    writer = RecordingWriter(buf, CONFIG)
    writer.append(Sync(100, 0, bytes(16)))
    with pytest.raises(ValueError, match="icount order"):
        writer.append(Sync(99, 0, bytes(16)))


def test_end_goes_to_close_not_append():
    writer = RecordingWriter(io.BytesIO(), CONFIG)
    with pytest.raises(TypeError, match="close"):
        writer.append(SAMPLE_END)


def test_close_refuses_an_end_before_the_last_event():
    writer = RecordingWriter(io.BytesIO(), CONFIG)
    writer.append(Sync(100, 0, bytes(16)))
    with pytest.raises(ValueError, match="precedes"):
        writer.close(End(99, "x", 0, bytes(16)))


def test_a_closed_writer_refuses_more_work():
    writer = RecordingWriter(io.BytesIO(), CONFIG)
    writer.close(SAMPLE_END)
    assert writer.closed
    for call in (lambda: writer.append(Sync(1, 0, bytes(16))), writer.flush):
        with pytest.raises(ValueError, match="closed"):
            call()
    with pytest.raises(ValueError, match="closed"):
        writer.close(SAMPLE_END)


def test_leaving_the_context_without_close_leaves_an_incomplete_file():
    buf = io.BytesIO()
    with pytest.raises(KeyboardInterrupt), RecordingWriter(buf, CONFIG) as writer:
        writer.append(SerialInput(7, 0x3F8, b"q"))
        raise KeyboardInterrupt
    reader = RecordingReader(buf.getvalue())
    assert not reader.complete and reader.truncated_at == len(buf.getvalue())
    assert list(reader.events()) == [SerialInput(7, 0x3F8, b"q")]


@pytest.mark.parametrize(
    ("config", "blobs", "error"),
    [
        ({"x": float("nan")}, [], "non-finite"),
        ({"x": (1, 2)}, [], "tuple"),
        ({1: "a"}, [], "not a str"),
        ({"x": 1 << 64}, [], "64-bit"),
        ({"x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}, [], "deeper"),
        ({"x": "a" * (1 << 20)}, [], "limit"),
        ("not a dict", [], "dict"),
        ({}, [("../etc/passwd", b"")], "blob name"),
        ({}, [("kernel", b""), ("kernel", b"")], "twice"),
        ({}, [("kernel", "text")], "bytes"),
    ],
)
def test_writer_refuses_what_the_reader_would_reject(config, blobs, error):
    with pytest.raises((TypeError, ValueError), match=error):
        RecordingWriter(io.BytesIO(), config, blobs)


def test_header_and_blobs_are_on_disk_as_soon_as_the_writer_exists(tmp_path):
    path = tmp_path / "live.rvr"
    writer = RecordingWriter(path, CONFIG, [("kernel", KERNEL)])
    reader = RecordingReader(path)
    assert reader.blob("kernel") == KERNEL and not reader.complete
    assert list(reader.events()) == []
    writer.close(SAMPLE_END)


def test_copy_of_a_live_recording_reads_as_incomplete_with_every_complete_chunk():
    buf = io.BytesIO()
    writer = RecordingWriter(buf, CONFIG, [("kernel", KERNEL)], chunk_events=3)
    events = [Sync(i * 100, i, bytes(16)) for i in range(8)]
    for event in events:
        writer.append(event)
    snapshot = buf.getvalue()  # what SIGKILL would leave: 2 chunks, 2 events pending
    reader = RecordingReader(snapshot)
    assert not reader.complete and reader.end is None
    assert reader.truncated_at == len(snapshot)
    assert list(reader.events()) == events[:6]


def test_a_partial_last_chunk_is_a_truncated_tail_not_an_error():
    data, _ = record(sample_events(), end=None, chunk_events=3)
    whole = RecordingReader(data)
    last = whole.chunks[-1]
    for cut in (last.offset + 1, last.offset + 39, last.offset + 41, last.end - 1):
        reader = RecordingReader(data[:cut])
        assert reader.truncated_at == last.offset and not reader.complete
        assert list(reader.events()) == sample_events()[:6]


def test_sigkilled_recorder_leaves_a_file_readable_up_to_its_last_chunk(tmp_path):
    path = tmp_path / "killed.rvr"
    script = textwrap.dedent(
        f"""
        import os, signal
        from replayvm.log import RecordingWriter, Sync
        w = RecordingWriter({str(path)!r}, {{"memory_mib": 64}}, [("kernel", b"k" * 5000)],
                            chunk_events=10, fsync=False)
        for i in range(35):
            w.append(Sync(i, i, bytes(16)))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    reader = RecordingReader(path)
    assert not reader.complete
    assert list(reader.events()) == [Sync(i, i, bytes(16)) for i in range(30)]
    assert reader.blob("kernel") == b"k" * 5000


# -- hand-made files (the builder follows docs/FORMAT.md) ---------------------


def test_an_unknown_future_version_is_refused_with_a_clear_message():
    data, _ = record()
    newer = data[:8] + struct.pack("<H", FORMAT_VERSION + 1) + data[10:]
    with pytest.raises(TraceFormatError, match=rf"version {FORMAT_VERSION + 1} is newer.*upgrade replayvm"):
        RecordingReader(newer)


def test_version_zero_is_refused():
    with pytest.raises(TraceFormatError, match="unknown format version 0"):
        RecordingReader(preamble(0) + header_frame())


@pytest.mark.parametrize("data", [b"", b"\x89RVR", b"PK\x03\x04" + bytes(30), b"\x89RVR\r\n\x1a\n"])
def test_files_that_are_not_recordings_are_refused_at_offset_zero(data):
    with pytest.raises(TraceFormatError) as info:
        RecordingReader(data)
    assert info.value.offset == 0


def test_minimal_file_has_no_blobs_and_no_events():
    reader = RecordingReader(preamble() + header_frame())
    assert not reader.complete and reader.truncated_at == 10 + 40 + len(header_frame()) - 40
    assert list(reader.events()) == [] and dict(reader.blobs) == {}


def test_an_ancillary_frame_is_skipped_and_an_unknown_critical_frame_is_refused():
    data, _ = record(sample_events(), end=None)
    with_note = data + frame(b"n", b"bug report: hangs after login")
    assert list(RecordingReader(with_note).events()) == sample_events()
    with pytest.raises(TraceFormatError, match="unknown frame tag 0x58") as info:
        RecordingReader(data + frame(b"X", b""))
    assert info.value.offset == len(data)


def test_bytes_after_end_are_refused():
    data, _ = record()
    with pytest.raises(TraceFormatError, match="1 bytes after END"):
        RecordingReader(data + b"\x00")


def test_a_bad_crc_in_a_complete_last_chunk_is_corruption():
    data, _ = record(sample_events(), end=None)
    last = RecordingReader(data).chunks[-1]
    corrupt = bytearray(data)
    corrupt[last.end - 1] ^= 0x01
    with pytest.raises(TraceFormatError, match="payload checksum") as info:
        RecordingReader(bytes(corrupt))
    assert info.value.offset == last.offset


def test_a_bad_frame_header_crc_is_corruption_even_at_the_tail():
    data, _ = record(sample_events(), end=None)
    last = RecordingReader(data).chunks[-1]
    corrupt = bytearray(data[: last.offset + 40])  # header complete, payload cut
    corrupt[last.offset + 8] ^= 0x80  # stored length
    with pytest.raises(TraceFormatError, match="frame header checksum") as info:
        RecordingReader(bytes(corrupt))
    assert info.value.offset == last.offset


def test_a_zero_filled_tail_reads_as_a_truncated_tail():
    data, _ = record(sample_events(), end=None)
    reader = RecordingReader(data + bytes(3000))
    assert not reader.complete and reader.truncated_at == len(data)
    assert list(reader.events()) == sample_events()


def test_zeros_followed_by_anything_are_corruption():
    data, _ = record(sample_events(), end=None)
    with pytest.raises(TraceFormatError, match="frame header checksum") as info:
        RecordingReader(data + bytes(100) + b"\x01")
    assert info.value.offset == len(data)


def test_a_file_cut_inside_its_blobs_is_an_error():
    data, _ = record()
    kernel_offset = RecordingReader(data).blobs["kernel"].offset
    with pytest.raises(TraceFormatError, match="ends inside blob 'kernel'"):
        RecordingReader(data[: kernel_offset + 50])


def test_malformed_events_after_good_chunks_fail_after_yielding_them():
    data, _ = record([Sync(1, 1, bytes(16))], end=None)
    bad = frame(b"C", b"\x06\x00\x00\x10", count=1, first_icount=2)
    events = RecordingReader(data + bad).events()
    assert next(events) == Sync(1, 1, bytes(16))
    with pytest.raises(TraceFormatError, match="needs 16 bytes") as info:
        next(events)
    assert info.value.offset == len(data)


SYNC_RECORD = b"\x06\x00\x00\x10" + bytes(16)


def test_a_chunk_starting_before_the_previous_chunk_is_corruption():
    data, _ = record([Sync(100, 1, bytes(16))], end=None)
    with pytest.raises(TraceFormatError, match="before the previous chunk's 100"):
        RecordingReader(data + frame(b"C", SYNC_RECORD, count=1, first_icount=50))


def test_a_chunk_starting_before_the_previous_chunks_last_event_is_corruption():
    data, _ = record([Sync(100, 1, bytes(16)), Sync(200, 1, bytes(16))], end=None)
    events = RecordingReader(data + frame(b"C", SYNC_RECORD, count=1, first_icount=150)).events()
    assert len([next(events), next(events)]) == 2
    with pytest.raises(TraceFormatError, match="before the previous event at 200"):
        next(events)


def test_an_end_before_the_last_event_is_corruption():
    data, _ = record([Sync(100, 1, bytes(16)), Sync(200, 1, bytes(16))], end=None)
    end = b"\x07\x00\x00\x00\x10" + bytes(16) + b"\x00"  # END, empty reason, status 0
    reader = RecordingReader(data + frame(b"E", end, count=1, first_icount=150))
    assert reader.end.icount == 150
    with pytest.raises(TraceFormatError, match="END at icount 150 precedes"):
        list(reader.events())
    with pytest.raises(TraceFormatError, match="END at icount 50 precedes the last chunk"):
        RecordingReader(data + frame(b"E", end, count=1, first_icount=50))


def test_a_reader_refuses_use_after_close_and_unknown_sources():
    data, _ = record(sample_events())
    with RecordingReader(data) as reader:
        pass
    with pytest.raises(ValueError, match="closed"):
        reader.blob("kernel")
    with pytest.raises(TypeError):
        RecordingReader(12)  # type: ignore[arg-type]


def test_a_20_byte_file_claiming_a_100_gb_blob_fails_fast():
    data = preamble() + frame(b"B", b"", stored_len=100 << 30, raw_len=100 << 30)[:10]
    assert len(data) == 20
    with pytest.raises(TraceFormatError):
        RecordingReader(data)


def test_a_header_declaring_a_100_gb_blob_fails_before_allocating():
    table = [{"name": "disk0", "size": 100 << 30, "sha256": "0" * 64}]
    blob = frame(b"B", b"", codec=2, stored_len=1 << 30, raw_len=100 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(TraceFormatError, match="size must be an integer"):
            RecordingReader(preamble() + header_frame(blobs=table) + blob)
        table[0]["size"] = 1 << 32
        blob = frame(b"B", b"", codec=2, stored_len=1 << 30, raw_len=1 << 32)
        with pytest.raises(TraceFormatError, match="ends inside blob 'disk0'"):
            RecordingReader(preamble() + header_frame(blobs=table) + blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize(
    ("bad_frame", "error"),
    [
        (frame(b"C", b"", raw_len=(8 << 20) + 1, codec=1, count=1), "limit is"),
        (frame(b"C", b"\x00" * 10, raw_len=10 * 256 + 1, codec=1, count=1), "cannot hold"),
        (frame(b"C", b"\x00" * 10, raw_len=11, count=1), "stored size"),
        (frame(b"C", b"\x00" * 10, count=6), "declares 6 events in 10 bytes"),
        (frame(b"C", b"\x00" * 10, count=0), "declares 0 events"),
        (frame(b"C", b"\x00" * 10, codec=7, count=1), "unknown codec"),
        (frame(b"C", b"\x00" * 10, reserved=1, count=1), "reserved"),
        (frame(b"C", b"\x00" * 10, codec=1, raw_len=40, count=1), "corrupt lz4"),
        (frame(b"E", b"\x00" * 10, count=2), "not 1"),
        (frame(b"H", b"{}"), "unexpected header frame"),
        (frame(b"C", b"\x00" * 10, count=1, payload_crc=0), "payload checksum"),
    ],
)
def test_impossible_chunk_frames_are_refused_at_their_offset(bad_frame, error):
    data, _ = record(end=None)
    with pytest.raises(TraceFormatError, match=error) as info:
        list(RecordingReader(data + bad_frame).events())
    assert info.value.offset == len(data)


_BLOB = {"name": "kernel", "size": 0, "sha256": "0" * 64}


def _header_with_blobs(blobs):
    return json.dumps({"replayvm": "1", "unicorn": "2", "config": {}, "blobs": blobs}).encode()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b'{"x": NaN}', "NaN"),
        (b'{"x": 1e999}', "non-finite"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"x": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"x": "\\ud800"}', "UTF-8"),
        (json.dumps({"unicorn": "2", "config": {}, "blobs": []}).encode(), '"replayvm"'),
        (
            json.dumps({"replayvm": "1", "unicorn": "2", "config": [], "blobs": []}).encode(),
            "config",
        ),
        (
            json.dumps({"replayvm": "1", "unicorn": "2", "config": {}, "blobs": {}}).encode(),
            "blobs",
        ),
        (_header_with_blobs([{"name": "/etc/x"}]), "blob name"),
        (_header_with_blobs([3]), "blob 0 is not a JSON object"),
        (_header_with_blobs([_BLOB, _BLOB]), "appears twice"),
        (_header_with_blobs([dict(_BLOB, sha256="AB" * 32)]), "sha256"),
        (_header_with_blobs([dict(_BLOB, size=True)]), "size"),
        (_header_with_blobs([dict(_BLOB, name=f"b{i}") for i in range(65)]), "65 blobs"),
        (b" " * ((1 << 20) + 1), "limit is"),
    ],
)
def test_hostile_header_json_is_refused(payload, error):
    with pytest.raises(TraceFormatError, match=error) as info:
        RecordingReader(preamble() + frame(b"H", payload))
    assert info.value.offset == 10


def test_unknown_header_keys_are_ignored_for_compatibility():
    doc = {"replayvm": "9", "unicorn": "2", "config": {}, "blobs": [], "notes": "later field"}
    assert RecordingReader(preamble() + header_frame(doc)).header.replayvm_version == "9"

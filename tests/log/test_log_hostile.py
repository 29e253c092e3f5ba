"""Properties of reading untrusted files: prefixes, bit flips, arbitrary bytes.

Whatever the bytes, the reader gives events or TraceFormatError (checked by
``outcome``, which lets any other exception fail the test); a generous
deadline turns a hang into a failure.
"""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rvr_helpers import (
    CHUNK_EVENT,
    END,
    event_sequences,
    frame,
    header_frame,
    outcome,
    preamble,
)

from replayvm.errors import TraceFormatError
from replayvm.log import RecordingReader, RecordingWriter
from replayvm.log.codec import encode_event

HOSTILE = settings(
    max_examples=60,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def recordings(draw):
    """(file bytes, events written, complete?) from a real writer."""
    events = draw(event_sequences(max_size=12))
    blobs = draw(
        st.lists(
            st.tuples(st.sampled_from(["kernel", "initrd", "disk0"]), st.binary(max_size=64)),
            max_size=2,
            unique_by=lambda b: b[0],
        )
    )
    buf = io.BytesIO()
    writer = RecordingWriter(buf, {"memory_mib": 64}, blobs, chunk_events=draw(st.integers(1, 5)), fsync=False)
    for event in events:
        writer.append(event)
    complete = draw(st.booleans())
    if complete:
        last = events[-1].icount if events else 0
        writer.close(dataclasses.replace(draw(END), icount=last))
    else:
        writer.flush()
    return buf.getvalue(), events, complete


@settings(HOSTILE, max_examples=12)
@given(recordings())
def test_every_truncation_reads_as_a_prefix_or_fails_inside_the_header(recording):
    data, events, complete = recording
    reader = RecordingReader(data)
    assert reader.complete == complete and list(reader.events()) == events
    for cut in range(len(data) + 1):
        result = outcome(data[:cut])
        if cut < reader.events_offset:
            # Cut inside the preamble, header or blobs: nothing to replay.
            assert isinstance(result, TraceFormatError), cut
            continue
        assert not isinstance(result, TraceFormatError), (cut, result)
        cut_reader, cut_events = result
        assert cut_events == events[: len(cut_events)]
        assert len(cut_events) == sum(c.count for c in reader.chunks if c.end <= cut)
        assert cut_reader.complete == (complete and cut == len(data))
        if not cut_reader.complete:
            assert reader.events_offset <= cut_reader.truncated_at <= cut


@HOSTILE
@given(recordings(), st.data())
def test_flipped_bits_give_events_or_trace_format_error(recording, data):
    original = bytearray(recording[0])
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(original) - 1))
        original[index] ^= data.draw(st.integers(1, 255))
    outcome(bytes(original))


@HOSTILE
@given(
    st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=200).map(lambda b: preamble() + b),
        st.binary(max_size=200).map(lambda b: preamble() + header_frame() + b),
    )
)
def test_arbitrary_bytes_give_events_or_trace_format_error(data):
    outcome(data)


FIELDS = st.fixed_dictionaries(
    {
        "tag": st.sampled_from(b"HBCEnXz\x00"),
        "codec": st.integers(0, 3),
        "count": st.one_of(st.integers(0, 4), st.integers(0, (1 << 32) - 1)),
        "first_icount": st.one_of(st.integers(0, 1000), st.integers(0, (1 << 64) - 1)),
        "raw_len": st.one_of(st.none(), st.integers(0, 300), st.integers(0, (1 << 64) - 1)),
    }
)


@HOSTILE
@given(st.lists(st.tuples(FIELDS, st.binary(max_size=60)), min_size=1, max_size=4))
def test_frames_with_valid_checksums_and_hostile_contents_are_refused_cleanly(frames):
    # CRCs stop random damage; these frames pass them and attack the decoders.
    body = b"".join(frame(f["tag"], payload, **{k: v for k, v in f.items() if k != "tag"}) for f, payload in frames)
    outcome(preamble() + header_frame() + body)


@HOSTILE
@given(
    st.lists(st.one_of(CHUNK_EVENT.map(lambda e: (e, None)), END.map(lambda e: (None, e))), max_size=4),
    st.binary(max_size=40),
    st.integers(0, 3),
)
def test_chunks_of_real_records_with_garbage_mixed_in_are_refused_cleanly(items, junk, where):
    payload = bytearray()
    for event, end in items:
        encode_event(payload, event or end, 0)
    payload[where:where] = junk
    outcome(preamble() + header_frame() + frame(b"C", bytes(payload), count=len(items) or 1))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@HOSTILE
@given(
    st.one_of(
        JSON.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {
                "replayvm": JSON,
                "unicorn": JSON,
                "config": JSON,
                "blobs": st.lists(st.fixed_dictionaries({"name": JSON, "size": JSON, "sha256": JSON}), max_size=2),
            }
        ).map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=100),
    )
)
def test_hostile_header_json_gives_a_header_or_trace_format_error(payload):
    outcome(preamble() + frame(b"H", payload))

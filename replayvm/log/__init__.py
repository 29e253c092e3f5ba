"""The recording file (``.rvr``): container, event codec, chunking, lz4, CRC.

This layer knows bytes, events and the file, nothing of the engine, devices
or sessions. :class:`RecordingWriter` and :class:`RecordingReader` own the
format (docs/FORMAT.md); everything else sees the typed events of
:mod:`replayvm.log.events`.
"""

from replayvm.log.events import (
    KINDS,
    DeviceResult,
    End,
    Entropy,
    Event,
    NetRx,
    SerialInput,
    Sync,
    WallClock,
    kind_name,
)
from replayvm.log.format import FORMAT_VERSION
from replayvm.log.header import BlobInfo, RecordingHeader
from replayvm.log.reader import FrameInfo, RecordingReader, RecordingSummary
from replayvm.log.writer import RecordingWriter

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "BlobInfo",
    "DeviceResult",
    "End",
    "Entropy",
    "Event",
    "FrameInfo",
    "NetRx",
    "RecordingHeader",
    "RecordingReader",
    "RecordingSummary",
    "RecordingWriter",
    "SerialInput",
    "Sync",
    "WallClock",
    "kind_name",
]

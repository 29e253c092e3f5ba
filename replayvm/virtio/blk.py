"""virtio-blk (virtio 1.2 §5.2) over an in-memory copy-on-write disk.

The base image is immutable ``bytes`` (the board embeds it in the
recording); guest writes land in an overlay of 512-byte sectors, so a
replay, a checkpoint restore or a second run starts from the same disk.
The overlay is the device's state: a dict of sector number -> 512 bytes.

Requests (§5.2.6): a 16-byte header ``{le32 type; le32 reserved; le64
sector}`` in the device-readable part, OUT data after it; IN data in the
device-writable part, whose last byte is the status. Any layout of these
over descriptors is accepted (VIRTIO_F_VERSION_1 implies ANY_LAYOUT).
"""

from __future__ import annotations

import struct
from typing import Any

from replayvm.virtio.device import VIRTIO_ID_BLOCK, VirtioBackend
from replayvm.virtio.queue import DescriptorChain

SECTOR_SIZE = 512  # §5.2.6: sector numbers count 512-byte units whatever blk_size says

VIRTIO_BLK_F_SIZE_MAX = 1
VIRTIO_BLK_F_SEG_MAX = 2
VIRTIO_BLK_F_GEOMETRY = 4
VIRTIO_BLK_F_RO = 5
VIRTIO_BLK_F_BLK_SIZE = 6
VIRTIO_BLK_F_FLUSH = 9

VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8

VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2

VIRTIO_BLK_ID_BYTES = 20
VIRTIO_BLK_REQ_HEADER = struct.Struct("<IIQ")

REQUESTQ = 0


class VirtioBlk(VirtioBackend):
    """A block device with one request queue (§5.2.2)."""

    device_id = VIRTIO_ID_BLOCK
    name = "blk"
    queue_names = ("requestq",)
    queue_num_max = 256

    def __init__(self, image: bytes, *, read_only: bool = False, serial: str = "replayvm-disk0") -> None:
        super().__init__()
        self.image = bytes(image)
        self.read_only = read_only
        self.serial = serial.encode("ascii", errors="replace")[:VIRTIO_BLK_ID_BYTES]
        self.capacity = (len(self.image) + SECTOR_SIZE - 1) // SECTOR_SIZE
        self.overlay: dict[int, bytes] = {}

    # -- feature bits and configuration (§5.2.3, §5.2.4) -------------------------------------
    def device_features(self) -> int:
        features = 1 << VIRTIO_BLK_F_FLUSH | 1 << VIRTIO_BLK_F_SEG_MAX
        if self.read_only:
            features |= 1 << VIRTIO_BLK_F_RO
        return features

    def config_space(self) -> bytes:
        """capacity, size_max, seg_max (the queue can hold a header, the status and the rest)."""
        return struct.pack("<QII", self.capacity, 0, self.queue_num_max - 2)

    # -- the disk -----------------------------------------------------------------------------
    def read_sectors(self, sector: int, count: int) -> bytes:
        out = bytearray()
        for s in range(sector, sector + count):
            data = self.overlay.get(s)
            if data is None:
                data = self.image[s * SECTOR_SIZE : (s + 1) * SECTOR_SIZE].ljust(SECTOR_SIZE, b"\0")
            out += data
        return bytes(out)

    def write_sectors(self, sector: int, data: bytes) -> None:
        for i in range(len(data) // SECTOR_SIZE):
            self.overlay[sector + i] = data[i * SECTOR_SIZE : (i + 1) * SECTOR_SIZE]

    def disk_bytes(self) -> bytes:
        """The whole disk as the guest sees it (base image with the overlay applied)."""
        return self.read_sectors(0, self.capacity)

    def _in_range(self, sector: int, length: int) -> bool:
        return length % SECTOR_SIZE == 0 and sector + length // SECTOR_SIZE <= self.capacity

    # -- requests (§5.2.6) -----------------------------------------------------------------------
    def queue_notify(self, index: int) -> None:
        if index == REQUESTQ:
            self.drain(REQUESTQ, self._request)

    def _request(self, chain: DescriptorChain) -> int | None:
        out = chain.read()
        self.link.stats.bytes_in += len(out)
        room = chain.writable_length
        if len(out) < VIRTIO_BLK_REQ_HEADER.size or room < 1:
            self.link.device_error(
                f"block request {chain.head}: {len(out)} readable and {room} writable bytes, "
                "no room for the header and status (§5.2.6)"
            )
            return None
        rtype, _, sector = VIRTIO_BLK_REQ_HEADER.unpack_from(out)
        data_out = out[VIRTIO_BLK_REQ_HEADER.size :]
        data_in_room = room - 1
        payload = b""
        if rtype == VIRTIO_BLK_T_IN:
            if self._in_range(sector, data_in_room):
                payload, status = self.read_sectors(sector, data_in_room // SECTOR_SIZE), VIRTIO_BLK_S_OK
            else:
                status = VIRTIO_BLK_S_IOERR
        elif rtype == VIRTIO_BLK_T_OUT:
            if not self.read_only and self._in_range(sector, len(data_out)):
                self.write_sectors(sector, data_out)
                status = VIRTIO_BLK_S_OK
            else:
                status = VIRTIO_BLK_S_IOERR
        elif rtype == VIRTIO_BLK_T_FLUSH:
            status = VIRTIO_BLK_S_OK  # the overlay is the medium: nothing is cached
        elif rtype == VIRTIO_BLK_T_GET_ID:
            # §5.2.6: up to 20 bytes, NUL-terminated only if shorter.
            payload = self.serial.ljust(VIRTIO_BLK_ID_BYTES, b"\0")[:data_in_room]
            status = VIRTIO_BLK_S_OK
        else:
            status = VIRTIO_BLK_S_UNSUPP
        written = chain.write(payload)
        chain.write(bytes([status]), room - 1)
        # §2.7.8.1: len counts bytes written from the start of the writable part.
        return room if written == room - 1 else written

    # -- state ------------------------------------------------------------------------------------
    def save_state(self) -> dict[str, Any]:
        return {"overlay": dict(self.overlay)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.overlay = dict(state["overlay"])

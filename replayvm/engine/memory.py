"""Guest RAM: one host buffer mapped into Unicorn with ``mem_map_ptr``.

Keeping RAM in our own anonymous mmap (DESIGN.md §3) lets the hypervisor,
devices and snapshots read and write guest-physical memory without a Unicorn
call per access, and lets checkpoints diff pages with memcmp. Writes made
here bypass Unicorn's self-modifying-code detection: whoever writes guest
*code* from the host must call :meth:`Vcpu.flush_code` afterwards.

All accessors take guest-physical addresses and raise :class:`GuestMemoryError`
outside RAM: a guest-controlled address never reaches Python's slicing rules.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap

from replayvm.errors import ReplayVMError

PAGE_SIZE = 4096
DIGEST_CHUNK = 1 << 16  # sparse_digest's unit
_ZERO_CHUNK = bytes(DIGEST_CHUNK)


class GuestMemoryError(ReplayVMError):
    """A guest-physical access outside RAM."""


class GuestRam:
    def __init__(self, size: int) -> None:
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError("RAM size must be a positive multiple of 4 KiB")
        self.size = size
        self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        # Transparent huge pages, as QEMU asks for guest RAM (ram_block_add):
        # fewer host TLB misses, and reading RAM the guest never touched (the
        # END digest) maps one zero page per 2 MiB instead of 512 (64 MiB:
        # ~4 ms instead of ~20). Where the kernel has none, 4 KiB pages it is.
        huge = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only
        if huge is not None:
            try:
                self._map.madvise(huge)
            except OSError:
                pass
        self.view = memoryview(self._map)
        self._cbuf = (ctypes.c_char * size).from_buffer(self._map)
        self.address = ctypes.addressof(self._cbuf)

    def _check(self, paddr: int, length: int) -> None:
        if paddr < 0 or length < 0 or paddr + length > self.size:
            raise GuestMemoryError(f"guest-physical access {paddr:#x}+{length} outside RAM (size {self.size:#x})")

    def read(self, paddr: int, length: int) -> bytes:
        self._check(paddr, length)
        return bytes(self.view[paddr : paddr + length])

    def write(self, paddr: int, data: bytes) -> None:
        self._check(paddr, len(data))
        self.view[paddr : paddr + len(data)] = data

    def read_int(self, paddr: int, size: int) -> int:
        self._check(paddr, size)
        return int.from_bytes(self.view[paddr : paddr + size], "little")

    def write_int(self, paddr: int, size: int, value: int) -> None:
        self._check(paddr, size)
        self.view[paddr : paddr + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def contains(self, paddr: int, length: int = 1) -> bool:
        return 0 <= paddr and paddr + length <= self.size

    def digest(self) -> bytes:
        # SHA-256 runs on the CPU's SHA extensions where present: ~2x blake2b here.
        return hashlib.sha256(self.view).digest()[:16]

    def sparse_digest(self) -> bytes:
        """SHA-256 over the offset and contents of every 64 KiB chunk that is
        not all zero. Equal digests mean equal RAM, as with :meth:`digest`
        (the offsets keep it unambiguous), but a guest leaves most of its RAM
        untouched, and comparing a chunk with zeros costs a memcmp where
        hashing it costs ~15x more (64 MiB: ~4 ms instead of ~45 ms)."""
        h = hashlib.sha256()
        for offset in range(0, self.size, DIGEST_CHUNK):
            chunk = self._map[offset : offset + DIGEST_CHUNK]
            if chunk != _ZERO_CHUNK[: len(chunk)]:
                h.update(offset.to_bytes(8, "little"))
                h.update(chunk)
        return h.digest()[:16]

    def close(self) -> None:
        del self._cbuf
        self.view.release()
        self._map.close()

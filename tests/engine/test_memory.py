"""Guest RAM's digests: equal digests exactly when RAM is equal."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replayvm.engine.memory import DIGEST_CHUNK, GuestMemoryError, GuestRam

SIZE = 8 * DIGEST_CHUNK + 4096  # a last chunk shorter than the others


def ram_with(writes: list[tuple[int, bytes]]) -> GuestRam:
    ram = GuestRam(SIZE)
    for paddr, data in writes:
        ram.write(paddr, data)
    return ram


def test_the_full_digest_is_sha256_of_every_byte() -> None:
    ram = ram_with([(5, b"abc")])
    assert ram.digest() == hashlib.sha256(bytes(ram.view)).digest()[:16]


def test_the_sparse_digest_hashes_the_offset_and_contents_of_non_zero_chunks() -> None:
    ram = ram_with([(DIGEST_CHUNK + 7, b"x"), (SIZE - 1, b"y")])
    expected = hashlib.sha256()
    for offset in (DIGEST_CHUNK, 8 * DIGEST_CHUNK):
        expected.update(offset.to_bytes(8, "little") + bytes(ram.view[offset : offset + DIGEST_CHUNK]))
    assert ram.sparse_digest() == expected.digest()[:16]


def test_the_same_bytes_in_another_chunk_give_another_sparse_digest() -> None:
    assert ram_with([(0, b"\1")]).sparse_digest() != ram_with([(DIGEST_CHUNK, b"\1")]).sparse_digest()


def test_zeros_written_over_data_give_the_digest_of_untouched_ram() -> None:
    ram = ram_with([(3 * DIGEST_CHUNK + 9, b"data")])
    ram.write(3 * DIGEST_CHUNK + 9, bytes(4))
    assert ram.sparse_digest() == GuestRam(SIZE).sparse_digest()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, SIZE - 8), st.binary(min_size=1, max_size=8)), max_size=4),
    st.lists(st.tuples(st.integers(0, SIZE - 8), st.binary(min_size=1, max_size=8)), max_size=4),
)
def test_sparse_digests_are_equal_exactly_when_ram_is(a: list[tuple[int, bytes]], b: list[tuple[int, bytes]]) -> None:
    ram_a, ram_b = ram_with(a), ram_with(b)
    same = bytes(ram_a.view) == bytes(ram_b.view)
    assert (ram_a.sparse_digest() == ram_b.sparse_digest()) == same
    assert (ram_a.digest() == ram_b.digest()) == same


def test_accesses_outside_ram_are_refused() -> None:
    ram = GuestRam(SIZE)
    with pytest.raises(GuestMemoryError, match="outside RAM"):
        ram.read(SIZE - 2, 4)

"""The chunked AES-256-GCM format on its own: round trip, and every way of tampering refused."""

from __future__ import annotations

import io
import os

import pytest

from apps.maintenance import archive

KEY = b"\x01" * 32


def _seal(data: bytes, chunk_size: int = 1000) -> bytes:
    sealer = archive.Sealer(key=KEY, key_id="k1", header={"t": 1}, chunk_size=chunk_size)
    out = bytearray()
    for start in range(0, len(data), 777):
        out += sealer.write(data[start : start + 777])
    return bytes(out + sealer.close())


def _open(blob: bytes, key: bytes = KEY) -> bytes:
    header, chunks = archive.open_archive(io.BytesIO(blob).read, lambda _: key)
    assert header["key_id"] == "k1"
    return b"".join(chunks)


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 5000])
def test_round_trip_of_any_length(size):
    data = os.urandom(size)
    assert _open(_seal(data)) == data


def test_bytes_appended_after_the_final_chunk_are_refused():
    blob = _seal(os.urandom(3000))
    with pytest.raises(archive.ArchiveError):
        _open(blob + _seal(b"more")[-40:])


def test_a_chunk_from_another_backup_is_refused():
    """Each backup has its own salt, so chunks of another backup under the same key fail."""
    one, other = _seal(b"a" * 3000), _seal(b"a" * 3000)
    assert one != other
    with pytest.raises(archive.ArchiveError, match="failed authentication"):
        _open(one[:-100] + other[-100:])


def test_an_impossible_chunk_length_is_refused_before_reading_it():
    blob = bytearray(_seal(b"x" * 10))
    header_end = len(blob) - (4 + 10 + archive.TAG_BYTES)
    blob[header_end : header_end + 4] = (2**31).to_bytes(4, "big")
    with pytest.raises(archive.ArchiveError, match="impossible chunk length"):
        _open(bytes(blob))


def test_something_else_is_not_taken_for_a_backup():
    with pytest.raises(archive.ArchiveError, match="not an Autoglue backup"):
        _open(b"PGDMP" + b"\x00" * 100)

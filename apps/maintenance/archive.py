"""The backup file format: a header, then AES-256-GCM chunks that cannot be reordered, dropped,
truncated or extended without detection. Pure functions over bytes; no Django, no I/O.

Layout::

    b"AGBACKUP" | version (1 byte) | header length (4 bytes, big-endian) | header (JSON)
    then per chunk: ciphertext length (4 bytes, big-endian) | ciphertext (plaintext + 16-byte tag)

The header is plaintext (key id, salt, compression, chunk size, producer version) and is bound
to every chunk: its SHA-256 is part of each chunk's associated data. Each backup gets its own
key, HKDF-SHA256(backup key, salt from the header), so the chunk counter alone is a unique nonce.
Chunk `i` uses nonce `i` (96-bit big-endian) and associated data
`SHA-256(header) | i (8 bytes) | final flag (1 byte)`: a swapped chunk fails (wrong counter), a
dropped tail fails (the last chunk present was not sealed as final), bytes after the final chunk
are refused. The writer always ends with a final chunk, empty if need be.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"AGBACKUP"
VERSION = 1
TAG_BYTES = 16
CHUNK_SIZE = 1024 * 1024
# The header is only authenticated with the first chunk, so the chunk size it claims must not
# decide how much a reader buffers before a tag is checked: no writer goes above this.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
_LEN = struct.Struct(">I")


class ArchiveError(Exception):
    """The object is not a readable backup: corrupted, truncated, or sealed with another key."""


def _file_key(key: bytes, salt: bytes, key_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=b"autoglue-backup-v1:" + key_id.encode("ascii"),
    ).derive(key)


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(header_digest: bytes, index: int, final: bool) -> bytes:
    return header_digest + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


class Sealer:
    """Turns a plaintext stream into the archive, chunk by chunk; `write` and `close` return the
    bytes to append to the object. Holds at most one chunk of plaintext."""

    def __init__(
        self, *, key: bytes, key_id: str, header: dict[str, Any], chunk_size: int = CHUNK_SIZE
    ) -> None:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be from 1 to {MAX_CHUNK_SIZE} bytes")
        salt = os.urandom(32)
        self.header = {**header, "v": VERSION, "key_id": key_id, "salt": salt.hex()}
        self.header["chunk_size"] = chunk_size
        header_bytes = json.dumps(self.header, sort_keys=True).encode("utf-8")
        self._preamble = MAGIC + bytes([VERSION]) + _LEN.pack(len(header_bytes)) + header_bytes
        self._digest = hashlib.sha256(self._preamble).digest()
        self._aead = AESGCM(_file_key(key, salt, key_id))
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._index = 0
        self._started = False
        self.plaintext_bytes = 0

    def _seal(self, data: bytes, *, final: bool) -> bytes:
        sealed = self._aead.encrypt(
            _nonce(self._index), data, _aad(self._digest, self._index, final)
        )
        self._index += 1
        return _LEN.pack(len(sealed)) + sealed

    def write(self, data: bytes) -> bytes:
        out = bytearray()
        if not self._started:
            self._started = True
            out += self._preamble
        self.plaintext_bytes += len(data)
        self._pending += data
        # A full chunk is sealed only once more data follows it: the last chunk must be final.
        while len(self._pending) > self._chunk_size:
            out += self._seal(bytes(self._pending[: self._chunk_size]), final=False)
            del self._pending[: self._chunk_size]
        return bytes(out)

    def close(self) -> bytes:
        out = bytearray() if self._started else bytearray(self._preamble)
        self._started = True
        out += self._seal(bytes(self._pending), final=True)
        self._pending.clear()
        return bytes(out)


def open_archive(
    read: Callable[[int], bytes], keys: Callable[[str], bytes]
) -> tuple[dict[str, Any], Iterator[bytes]]:
    """Read the header with `read(n)` and return it with an iterator of authenticated
    plaintext chunks. `keys(key_id)` gives the key (raising if it is not configured). The
    iterator raises ArchiveError on any tampering, truncation or trailing data; nothing it has
    yielded is trustworthy until it ends without raising."""
    magic = _read_exact(read, len(MAGIC) + 1 + _LEN.size, "header")
    if magic[: len(MAGIC)] != MAGIC:
        raise ArchiveError("not an Autoglue backup (bad magic bytes)")
    if magic[len(MAGIC)] != VERSION:
        raise ArchiveError(f"unsupported backup format version {magic[len(MAGIC)]}")
    (length,) = _LEN.unpack(magic[len(MAGIC) + 1 :])
    if length > MAX_HEADER_BYTES:
        raise ArchiveError("backup header is too large")
    header_bytes = _read_exact(read, length, "header")
    try:
        header = json.loads(header_bytes)
        salt = bytes.fromhex(header["salt"])
        key_id = str(header["key_id"])
        chunk_size = int(header["chunk_size"])
    except (ValueError, KeyError, TypeError):
        raise ArchiveError("backup header is malformed") from None
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ArchiveError(f"backup header is malformed (chunk size {chunk_size} out of range)")
    digest = hashlib.sha256(magic + header_bytes).digest()
    aead = AESGCM(_file_key(keys(key_id), salt, key_id))
    return header, _chunks(read, aead, digest, chunk_size + TAG_BYTES)


def _chunks(
    read: Callable[[int], bytes], aead: AESGCM, digest: bytes, max_len: int
) -> Iterator[bytes]:
    index = 0
    first = _read_record(read, max_len)
    if first is None:
        raise ArchiveError("backup is truncated (no data after the header)")
    record: bytes = first
    while True:
        following = _read_record(read, max_len)
        final = following is None
        try:
            plain = aead.decrypt(_nonce(index), record, _aad(digest, index, final))
        except InvalidTag:
            raise ArchiveError(
                f"chunk {index} failed authentication: the backup is corrupted or truncated, "
                "or the backup key is wrong"
            ) from None
        yield plain
        if following is None:
            return
        record, index = following, index + 1


def _read_record(read: Callable[[int], bytes], max_len: int) -> bytes | None:
    prefix = read(_LEN.size)
    if not prefix:
        return None
    if len(prefix) < _LEN.size:
        prefix += _read_exact(read, _LEN.size - len(prefix), "chunk length")
    (length,) = _LEN.unpack(prefix)
    if length < TAG_BYTES or length > max_len:
        raise ArchiveError("backup is corrupted (impossible chunk length)")
    return _read_exact(read, length, "chunk")


def _read_exact(read: Callable[[int], bytes], n: int, what: str) -> bytes:
    parts, got = [], 0
    while got < n:
        data = read(n - got)
        if not data:
            raise ArchiveError(f"backup is truncated (inside a {what})")
        parts.append(data)
        got += len(data)
    return b"".join(parts)

"""TFRecord framing without TensorFlow: ``u64 length, u32 masked CRC-32C of it, payload, u32 masked
CRC-32C of the payload`` per record.

Reading indexes a shard by its 12-byte record headers (:func:`tfrecord_scan`); a record's payload CRC is
checked when it is read (:func:`read_record`). CRC-32C comes from ``google-crc32c``; the pure-Python
fallback does ~6 MB/s.
"""

from __future__ import annotations

import os
import struct

from vjepa2_ac.datasets.errors import DataError

__all__ = ["crc32c", "masked_crc", "tfrecord_frame", "tfrecord_scan", "tfrecord_index", "read_record"]

# CRC32C (Castagnoli) table for the pure-Python fallback.
_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)
del _i, _c

try:  # optional C implementation (google-crc32c); the pure-Python fallback does ~6 MB/s
    import google_crc32c as _gcrc  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _gcrc = None


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``."""
    if _gcrc is not None:  # pragma: no cover
        return int(_gcrc.value(bytes(data)))
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc(header)) + payload + struct.pack("<I", masked_crc(payload))


def tfrecord_scan(path: str | os.PathLike) -> tuple[list[tuple[int, int]], tuple[int, str] | None]:
    """``(payload offset, payload length)`` of every record before the first damaged header, and the
    damage, ``(byte position, problem)`` or ``None`` (headers only; payload CRCs are checked on read).

    A damaged header hides where the following records start, so the rest of the shard is lost; the
    records before it stay readable."""
    out = []
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            header = f.read(12)
            if len(header) != 12:
                return out, (pos, f"truncated TFRecord header at byte {pos}")
            (n,) = struct.unpack("<Q", header[:8])
            (hcrc,) = struct.unpack("<I", header[8:])
            if hcrc != masked_crc(header[:8]):
                return out, (pos, f"corrupt TFRecord header at byte {pos} (CRC mismatch)")
            if pos + 12 + n + 4 > size:
                return out, (pos, f"truncated TFRecord: record at byte {pos} needs {n} bytes")
            out.append((pos + 12, n))
            pos += 12 + n + 4
            f.seek(pos)
    return out, None


def tfrecord_index(path: str | os.PathLike) -> list[tuple[int, int]]:
    """``(payload offset, payload length)`` of every record of a TFRecord file; raises on any damage."""
    out, damage = tfrecord_scan(path)
    if damage is not None:
        raise DataError(path, damage[1])
    return out


def read_record(file: str, offset: int, length: int, episode: str) -> bytes:
    """The payload at ``offset`` (see :func:`tfrecord_scan`), CRC checked; errors name ``episode``."""
    with open(file, "rb") as f:
        f.seek(offset)
        payload = f.read(length)
        stored = f.read(4)
    if len(payload) != length or len(stored) != 4:
        raise DataError(episode, "truncated TFRecord record")
    if struct.unpack("<I", stored)[0] != masked_crc(payload):
        raise DataError(
            episode,
            f"record payload CRC mismatch (bytes {offset}..{offset + length} of the shard are damaged)",
        )
    return payload

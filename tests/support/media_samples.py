"""Small real files of each type WhatsApp takes (and some it does not), made here: tests
upload them, send them and receive them without any file shipped beside the tests."""

from __future__ import annotations

import struct
import zlib


def png(width: int = 1, height: int = 1, *, pad_to: int = 0) -> bytes:
    """A valid PNG (grey pixels); `pad_to` adds an ancillary chunk to reach that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    body = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
    )
    if pad_to > len(body) + 24:
        body += chunk(b"tEXt", b"pad\x00" + b"x" * (pad_to - len(body) - 16))
    return body + chunk(b"IEND", b"")


def jpeg(size: int = 200) -> bytes:
    """The start of a JFIF JPEG (SOI, APP0) padded with a comment segment, then EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    head = b"\xff\xd8" + app0
    pad = max(0, size - len(head) - 2)
    comments = b""
    while pad > 4:
        n = min(pad - 4, 65533)
        comments += b"\xff\xfe" + struct.pack(">H", n + 2) + b"c" * n
        pad -= n + 4
    return head + comments + b"\xff\xd9"


def mp4(size: int = 400, *, brand: bytes = b"isom") -> bytes:
    ftyp = struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x02\x00" + brand + b"mp41"
    free = max(8, size - len(ftyp))
    return ftyp + struct.pack(">I", free) + b"free" + b"\x00" * (free - 8)


def m4a() -> bytes:
    return mp4(brand=b"M4A ")


def webp(size: int = 200, *, animated: bool = False) -> bytes:
    if animated:
        vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x02, 0, 0, 0]) + b"\x00" * 6
        body = b"WEBP" + vp8x
    else:
        body = b"WEBP" + b"VP8 " + struct.pack("<I", 10) + b"\x00" * 10
    body += b"\x00" * max(0, size - 8 - len(body))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def ogg_opus() -> bytes:
    page = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13"
    return page + b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00" + b"\x00" * 64


def ogg_vorbis() -> bytes:
    page = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x1e"
    return page + b"\x01vorbis" + b"\x00" * 80


def mp3() -> bytes:
    return b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" + b"\x00" * 400


def pdf(size: int = 300) -> bytes:
    head = b"%PDF-1.4\n1 0 obj <<>> endobj\n"
    return head + b"%" + b"x" * max(0, size - len(head) - 7) + b"\n%%EOF\n"


def gif() -> bytes:
    return b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 40 + b";"


def exe() -> bytes:
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200

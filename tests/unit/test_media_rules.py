"""Meta's media rules (SPEC §8) as a table: a file's bytes and size in, its kind or the refusal's
code out."""

from __future__ import annotations

import pytest

from tests.support import media_samples as samples
from wagate.domain.media import check_for, classify, sniff

KB, MB = 1_000, 1_000_000

# (what, bytes, declared size or None for the real one, media_type asked, kind, error code)
CASES = [
    ("jpeg", samples.jpeg(), None, None, "image", None),
    ("png", samples.png(), None, None, "image", None),
    ("png at 5 MB", samples.png(), 5 * MB, None, "image", None),
    ("png over 5 MB", samples.png(), 5 * MB + 1, None, "image", "media_too_large"),
    ("mp4 video", samples.mp4(), 16 * MB, None, "video", None),
    ("mp4 over 16 MB", samples.mp4(), 16 * MB + 1, None, "video", "media_too_large"),
    ("m4a is audio", samples.m4a(), None, None, "audio", None),
    ("mp3", samples.mp3(), None, None, "audio", None),
    ("ogg opus", samples.ogg_opus(), None, None, "audio", None),
    ("ogg vorbis", samples.ogg_vorbis(), None, None, None, "media_type_not_supported"),
    ("pdf", samples.pdf(), 100 * MB, None, "document", None),
    ("pdf over 100 MB", samples.pdf(), 100 * MB + 1, None, "document", "media_too_large"),
    ("plain text", "Rechnung Nr. 5, Grüße\n".encode(), None, None, "document", None),
    ("webp sticker", samples.webp(), 100 * KB, None, "sticker", None),
    ("webp over 100 KB", samples.webp(), 100 * KB + 1, None, "sticker", "media_too_large"),
    ("animated webp 500 KB", samples.webp(animated=True), 500 * KB, None, "sticker", None),
    ("animated over 500 KB", samples.webp(animated=True), 500 * KB + 1, None, "sticker",
     "media_too_large"),
    ("gif", samples.gif(), None, None, None, "media_type_not_supported"),
    ("exe", samples.exe(), None, None, None, "media_type_not_supported"),
    ("binary junk", bytes(range(256)) * 4, None, None, None, "media_type_not_supported"),
    ("pdf asked as image", samples.pdf(), None, "image", "image", "media_type_mismatch"),
    ("jpeg asked as sticker", samples.jpeg(), None, "sticker", "sticker", "media_type_mismatch"),
    ("png asked as image", samples.png(), None, "image", "image", None),
    ("mp4 asked as video", samples.mp4(), None, "video", "video", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "size", "asked", "kind", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_media_rules(
    content: bytes, size: int | None, asked: str | None, kind: str | None, code: str | None
) -> None:
    sniffed = sniff(content)
    found, errors = classify(sniffed, size if size is not None else len(content), media_type=asked)
    assert (found.name if found else None) == kind
    assert [e.code for e in errors] == ([code] if code else [])
    for error in errors:
        assert error.field == "file" and error.message


def test_refusals_say_what_the_file_is_and_what_is_taken() -> None:
    _, [error] = classify(sniff(samples.gif()), 100)
    assert "image/gif" in error.message and "JPEG" in error.message and "100 MB" in error.message
    _, [error] = classify(sniff(samples.png()), 6 * MB)
    assert "6,000,000 bytes" in error.message and "5 MB" in error.message


def test_a_file_sent_as_another_kind_is_told_its_own_kind() -> None:
    _, [error] = check_for("image", "application/pdf", 1000)
    assert error.code == "media_type_mismatch" and "Send it as document" in error.message
    _, [error] = check_for("gif", "image/png", 1000)
    assert (error.field, error.code) == ("media_type", "invalid_field")

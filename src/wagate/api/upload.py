"""Reading a multipart upload as a stream: the file part's bytes as they arrive, the other
fields on the side, at most `MAX_UPLOAD` bytes of file and 64 KiB of everything else.

Starlette's `Request.form()` would do, but it spools every file to a temporary file first
(in memory up to 1 MiB, then on disk): a 100 MB upload would be written twice, once to /tmp
and once to the media store. Here python-multipart's push parser is fed straight from the ASGI
channel and the file part's bytes go on to the store chunk by chunk, so a 100 MB upload holds
about one chunk in memory at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from wagate.domain.errors import FieldError, InvalidBody, UploadTooLarge, ValidationFailed
from wagate.domain.media import MAX_UPLOAD

FILE_FIELD = "file"
FIELDS_LIMIT = 64 * 1024
"""Bytes of the fields other than the file, together."""
BODY_LIMIT = MAX_UPLOAD + FIELDS_LIMIT + 16 * 1024
"""The whole multipart body: the file, the other fields, and the parts' headers."""


class MultipartUpload:
    """One `multipart/form-data` body, read once: iterate `file_chunks()` to the end, then
    `fields`, `filename` and `saw_file` say what else came."""

    def __init__(self, request: Request) -> None:
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or not options.get(b"boundary"):
            raise InvalidBody(
                "Send the file as multipart/form-data with a field named 'file' "
                "(curl -F file=@photo.jpg)."
            )
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise InvalidBody("The Content-Length header is not a number.")
            if int(declared) > BODY_LIMIT:
                raise UploadTooLarge(
                    f"The upload is {int(declared):,} bytes; WhatsApp takes files of at most "
                    f"100 MB ({MAX_UPLOAD:,} bytes), a document."
                )
        self._request = request
        self._received = 0
        self._ended = False
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.saw_file = False
        self._fields_size = 0
        self._part_name: str | None = None
        self._part_filename: str | None = None
        self._part_value = bytearray()
        self._in_file = False
        self._file_done = False
        self._ready: list[bytes] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._parser = MultipartParser(
            options[b"boundary"],
            callbacks={
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    # ------------------------------------------------------------------ parser callbacks

    def _part_begin(self) -> None:
        self._headers = {}
        self._part_name = None
        self._part_filename = None
        self._part_value = bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").lower()] = bytes(
            self._header_value
        )
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name")
        self._part_name = name.decode("utf-8", "replace") if name is not None else None
        filename = options.get(b"filename")
        self._part_filename = filename.decode("utf-8", "replace") if filename is not None else None
        if self._part_name == FILE_FIELD:
            if self.saw_file:
                raise _Refusal(FieldError(FILE_FIELD, "invalid_field", "Send one file per upload."))
            self.saw_file = True
            self._in_file = True
            self.filename = self._part_filename or None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._ready.append(data[start:end])
            return
        self._fields_size += end - start
        if self._fields_size > FIELDS_LIMIT:
            raise _Refusal(
                FieldError("request", "payload_too_large", "The fields besides the file are "
                           "larger than 64 KiB.")
            )  # fmt: skip
        self._part_value += data[start:end]

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_done = True
        elif self._part_name is not None and self._part_filename is None:
            try:
                self.fields[self._part_name] = bytes(self._part_value).decode("utf-8")
            except UnicodeDecodeError:
                raise _Refusal(
                    FieldError(self._part_name, "invalid_field", "The field is not UTF-8 text.")
                ) from None

    # ------------------------------------------------------------------ reading

    async def drain(self) -> None:
        """Read (and drop) what is left of the body, so that a refusal made before its end
        reaches a client still sending instead of a reset connection."""
        while not self._ended and self._received <= BODY_LIMIT:
            message: dict[str, Any] = dict(await self._request.receive())
            if message["type"] == "http.disconnect":
                return
            self._received += len(message.get("body", b""))
            self._ended = not message.get("more_body", False)

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as the client sends them; the rest of the body is read too
        (its fields land in `fields`)."""
        while True:
            message: dict[str, Any] = dict(await self._request.receive())
            if message["type"] == "http.disconnect":
                raise InvalidBody("The client went away before sending the whole body.")
            chunk = message.get("body", b"")
            self._received += len(chunk)
            self._ended = not message.get("more_body", False)
            if self._received > BODY_LIMIT:
                raise UploadTooLarge(
                    f"The upload is larger than WhatsApp's largest file, 100 MB "
                    f"({MAX_UPLOAD:,} bytes, a document)."
                )
            try:
                self._parser.write(chunk)
            except _Refusal as refusal:
                raise ValidationFailed([refusal.error]) from None
            except MultipartParseError as exc:
                raise InvalidBody(f"The multipart body could not be parsed: {exc}.") from None
            ready, self._ready = self._ready, []
            for piece in ready:
                yield piece
            if self._ended:
                break
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise InvalidBody(f"The multipart body could not be parsed: {exc}.") from None
        if self.saw_file and not self._file_done:
            raise InvalidBody("The multipart body ends inside the file.")


class _Refusal(Exception):
    def __init__(self, error: FieldError) -> None:
        super().__init__(error.message)
        self.error = error

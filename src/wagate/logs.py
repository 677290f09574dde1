"""The server's log: how it is set up (`WAGATE_LOG_FORMAT` text or json, `WAGATE_LOG_LEVEL`)
and the line each send outcome gets.

What is logged, at info: one line per HTTP request (`wagate.http`, see `api/request_log.py`),
one per send outcome and retry (`wagate.dispatch`), the start and the stop of a server. A log
call passes facts as `extra` fields (ids, statuses, codes, durations); the JSON format writes
them as keys and the text format after the message. Never pass a token, a secret, a password or
a message's content: nothing downstream filters them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import traceback
from typing import IO, Any

from wagate.store.outbox import Failed, Outcome, Sent

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")

# Every attribute a LogRecord has of its own; anything else on a record came in `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}

dispatch_log = logging.getLogger("wagate.dispatch")


_second: list[Any] = [-1, ""]  # the last second formatted, and its text: one strftime a second


def _utc(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    if seconds != _second[0]:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{int((record.created - seconds) * 1000):03d}Z"


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """`2026-12-06T10:00:00.123Z INFO wagate.http POST /v1/messages 202 1.4ms acc_…`: each
    message is written to say its facts to people; the `extra` fields are for the JSON format."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record)} {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every `extra` field."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extra(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, separators=(",", ":"))


_RECORD_DEFAULTS = {
    "pathname": "",
    "filename": "",
    "module": "",
    "lineno": 0,
    "funcName": None,
    "exc_info": None,
    "exc_text": None,
    "stack_info": None,
    "thread": None,
    "threadName": None,
    "processName": None,
    "process": None,
    "taskName": None,
}
_STARTED = time.time()


def emit_fast(
    logger: logging.Logger, level: int, msg: str, args: tuple[Any, ...], fields: dict[str, Any]
) -> None:
    """`logger.log(level, msg, *args, extra=fields)` for a line written thousands of times a
    second (a request's): the same record reaches the same handlers, built without the
    logging module's look-ups of the caller, thread and process that no format here shows."""
    record = logging.LogRecord.__new__(logging.LogRecord)
    now = time.time()
    record.__dict__.update(_RECORD_DEFAULTS)
    record.__dict__.update(fields)
    record.name, record.msg, record.args = logger.name, msg, args
    record.levelno, record.levelname = level, logging.getLevelName(level)
    record.created, record.msecs = now, (now - int(now)) * 1000
    record.relativeCreated = (now - _STARTED) * 1000
    logger.handle(record)


class TurnBatchedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the info and debug lines of one turn of the event loop
    together: one write and flush for them all, instead of one per line (a line per request is
    thousands a second, and each write is a system call on the API's event loop). Warnings and
    errors, lines logged outside an event loop, and `flush()` (at exit, say) write at once,
    after whatever waits, so lines keep their order."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        # The loop a write is scheduled on (a loop closed before running it leaves it set, so
        # another loop's line schedules its own).
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)  # handle() holds the handler's lock
        if record.levelno < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                if self._scheduled_on is not loop:
                    self._scheduled_on = loop
                    loop.call_soon(self._write_waiting)
                return
        self._write_waiting()

    def flush(self) -> None:
        self._write_waiting()
        super().flush()

    def _write_waiting(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._scheduled_on = None
            if not self._lines:
                return
            text = "".join(self._lines)
            self._lines.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:
                if logging.raiseExceptions:
                    traceback.print_exc(file=sys.__stderr__)


def configure(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every log line (ours and uvicorn's) to `stream` (stderr) in one format."""
    if fmt not in FORMATS:
        raise ValueError(f"WAGATE_LOG_FORMAT must be one of {', '.join(FORMATS)}: {fmt!r}")
    if level.lower() not in LEVELS:
        raise ValueError(f"WAGATE_LOG_LEVEL must be one of {', '.join(LEVELS)}: {level!r}")
    # A line per request must stay cheap (thousands a second): records skip what no format
    # here shows, the caller's file and line (a walk up the stack), thread and process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    setattr(logging, "logAsyncioTasks", False)  # noqa: B010 (Python 3.12+; harmless before)
    handler = TurnBatchedHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own lines go through the same handler; its access log stays off (we write one
    # line per request ourselves, with the account and the duration).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # Libraries that log each connection, request or migration step at info: too chatty.
    for name in ("httpx", "httpcore", "aiosqlite", "asyncio", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def log_outcome(outcome: Outcome) -> None:
    """One line per send outcome: the message id, what happened, Meta's code; no content."""
    if isinstance(outcome, Sent):
        dispatch_log.info(
            "message %s accepted by WhatsApp (wamid %s)",
            outcome.message_id,
            outcome.wamid,
            extra={"message_id": outcome.message_id, "status": "accepted", "wamid": outcome.wamid},
        )
    elif isinstance(outcome, Failed):
        dispatch_log.warning(
            "message %s failed: %s (meta code %s)%s",
            outcome.message_id,
            outcome.code,
            outcome.meta_code,
            "" if outcome.attempted else " before it was sent",
            extra={
                "message_id": outcome.message_id,
                "status": "failed",
                "code": outcome.code,
                "meta_code": outcome.meta_code,
            },
        )
    # A retry has its own line where it is decided (dispatch/worker.py), with its attempt.

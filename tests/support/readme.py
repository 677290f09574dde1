"""The README's examples as a test runs them: every fenced block, in order, with what the
README source says about it in an HTML comment just above it (invisible to readers):

    <!-- readme-test: skip (why) -->   not run; the reason is required
    <!-- readme-test: file NAME -->    the block is the content of the file NAME, written into the
                                       working folder before anything runs (a CSV for send-bulk)
    <!-- readme-test: answer -->       a JSON block that shows what the block before it prints:
                                       checked loosely (see `matches`)

Without a comment, ```sh/```bash/```shell and ```python blocks are run; any other block must
carry a comment, so that a new example cannot slip in untested.

Only placeholders are replaced before a block runs (`PLACEHOLDERS`): the sandbox token a first
`wagate serve` prints (`wg_…`), the address of the server under test for the README's
`http://127.0.0.1:8000`, and a message id the examples made before (`msg_019abc…`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN = {"sh": "sh", "bash": "sh", "shell": "sh", "console": "sh", "python": "python", "py": "python"}
_FENCE = re.compile(r"^(`{3,}|~{3,})([\w+-]*)[^\n]*$")
_DIRECTIVE = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->", re.S)


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    directive: str | None  # the readme-test comment just above, if any

    @property
    def action(self) -> str:
        """run-sh, run-python, skip, file, answer, or unmarked."""
        if self.directive is None:
            kind = RUN.get(self.language)
            return f"run-{kind}" if kind else "unmarked"
        word = self.directive.split(None, 1)[0]
        return word if word in ("skip", "file", "answer") else f"unknown directive {word!r}"

    @property
    def argument(self) -> str:
        parts = (self.directive or "").split(None, 1)
        return parts[1].strip() if len(parts) > 1 else ""

    @property
    def name(self) -> str:
        return f"README.md:{self.line} {self.language or 'text'} ({self.action})"


def blocks(markdown: str) -> list[Block]:
    """Every fenced block, with the readme-test comment that precedes it (blank lines between
    the comment and the fence are allowed; any other text in between detaches it)."""
    lines = markdown.splitlines()
    found: list[Block] = []
    pending: str | None = None
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i].strip())
        if fence:
            opened_at, marker, language = i + 1, fence.group(1), fence.group(2).lower()
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            found.append(Block(opened_at, language, "\n".join(body) + "\n", pending))
            pending = None
        elif directive := _DIRECTIVE.search(lines[i]):
            pending = directive.group(1)
        elif lines[i].strip():
            pending = None
        i += 1
    return found


# ---------------------------------------------------------------------------- placeholders


@dataclass
class Placeholders:
    """What the README writes as placeholders, and what they stand for in this run."""

    server_url: str
    token: str
    message_ids: list[str] = field(default_factory=list)
    media_ids: list[str] = field(default_factory=list)

    def fill(self, text: str) -> str:
        text = re.sub(r"wg_(?:…|\.\.\.)", self.token, text)
        text = re.sub(r"https?://(?:127\.0\.0\.1|localhost):8000", self.server_url, text)
        text = re.sub(r"(?<![\w/])localhost:8000", self.server_url, text)
        if self.message_ids:
            text = re.sub(r"msg_\w*…", self.message_ids[-1], text)
        if self.media_ids:
            text = re.sub(r"med_\w*…", self.media_ids[-1], text)
        return text

    def learn(self, output: str) -> None:
        """Remember message ids printed by a block, for a later `msg_…` placeholder."""
        self.message_ids += re.findall(r'"id":\s*"(msg_\w+)"', output)
        self.media_ids += re.findall(r'"id":\s*"(med_\w+)"', output)


# ---------------------------------------------------------------------------- answers


def json_documents(output: str) -> Iterator[Any]:
    """Every JSON value printed one after another (curl's answers have no newline between)."""
    decoder = json.JSONDecoder()
    position = 0
    while position < len(output):
        start = min((i for i in (output.find("{", position), output.find("[", position)) if i >= 0),
                    default=-1)  # fmt: skip
        if start < 0:
            return
        try:
            value, end = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        yield value
        position = end


def matches(expected: Any, actual: Any) -> bool:
    """Loosely: every key shown is there, with a value of the same JSON type. A string with `…`
    stands for any value with the same prefix (`msg_019abc…`: any `msg_` id); a word (a string
    without digits, like a status) and a boolean must be equal; lists match item by item as far
    as the example goes."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and matches(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and all(
            matches(e, a) for e, a in zip(expected, actual, strict=False)
        )
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    if isinstance(expected, str):
        if not isinstance(actual, str):
            return False
        if "…" in expected:  # "msg_019abc…": any id of that kind (its prefix, as shown)
            kind = re.match(r"[A-Za-z]*[_.]?", expected)
            return actual.startswith(kind.group(0) if kind else "")
        return actual == expected if not any(c.isdigit() for c in expected) else True
    return isinstance(actual, int | float) and not isinstance(actual, bool)


def refusals(output: str) -> list[Any]:
    """The error answers (`"success": false`) a block printed: an example must not fail."""
    return [d for d in json_documents(output) if isinstance(d, dict) and d.get("success") is False]


def write_files(found: list[Block], folder: Path) -> None:
    for block in found:
        if block.action == "file":
            (folder / block.argument).write_text(block.text)

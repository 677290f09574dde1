"""Help text people can read. Typer tags every option with its Python type (`<str>`, `<bool>`,
`<list[str]>`) and keeps a docstring's line breaks, so the command list broke sentences in
mid-line; `tidy` walks the built command tree once, before it runs, and fixes both: flags get
no tag, values a plain one (TEXT, INTEGER, …), and each paragraph of help is one line for the
terminal to wrap."""

from __future__ import annotations

import re
from typing import Any

_PLAIN = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH", "bool": ""}
_SINGLE_BREAK = re.compile(r"(?<!\n)\n(?!\n)\s*")


def one_line_paragraphs(text: str) -> str:
    """Join the lines of each paragraph (paragraphs are separated by a blank line)."""
    return _SINGLE_BREAK.sub(" ", text.strip())


def _metavar(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return ""
    bare = param.bare_type() if hasattr(param, "bare_type") else "str"
    inner = bare.removeprefix("list[").removesuffix("]")
    return _PLAIN.get(inner, inner.upper())


def tidy(command: Any) -> Any:
    """Fix `command` and every command under it in place; returns it."""
    for attribute in ("help", "short_help"):
        text = getattr(command, attribute, None)
        if text:
            setattr(command, attribute, one_line_paragraphs(text))
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") == "option" and param.metavar is None:
            param.metavar = _metavar(param)
        if getattr(param, "help", None):
            param.help = one_line_paragraphs(param.help)
    make_help_option = getattr(command, "get_help_option", None)
    if make_help_option is not None:  # --help is made when help is shown, not in `params`

        def help_option(ctx: Any, _make: Any = make_help_option) -> Any:
            option = _make(ctx)
            if option is not None:
                option.metavar = ""
            return option

        command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
    return command

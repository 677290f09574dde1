"""WhatsApp's text formatting as safe HTML: `*bold*`, `_italic_`, `~strike~`, ```mono```.

The text is HTML-escaped first; only then are the markers turned into tags, so nothing a
customer or an API client wrote can become markup. Line breaks are kept by CSS
(`white-space: pre-wrap`), not by tags.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# As WhatsApp applies them: a marker opens where no letter or digit (nor the same marker) comes
# before it and a non-space follows it, and closes on a non-space with no letter or digit (nor
# the same marker) after it; a span does not cross a line break. "snake_case_name" and
# "2*3*4" therefore stay as they are, while "_*both*_" is bold and italic.


def _span(marker: str) -> re.Pattern[str]:
    m = re.escape(marker)
    return re.compile(rf"(?<![^\W_]|{m}){m}([^\s{m}](?:[^\n]*?[^\s{m}])?){m}(?![^\W_]|{m})")


_SPANS = ((_span("*"), "strong"), (_span("_"), "em"), (_span("~"), "s"))
_MONO = re.compile(r"```(.+?)```", re.DOTALL)
_SLOT = re.compile("\x00(\\d+)\x00")


def whatsapp_html(text: str | None) -> Markup:
    """`text` as WhatsApp shows it, as HTML that is safe to put in a page."""
    if not text:
        return Markup("")
    # NUL cannot come from a stored message (the API refuses it) but is dropped anyway, since
    # it marks the monospace placeholders below.
    escaped = str(escape(text.replace("\x00", "")))
    # Monospace text is shown verbatim: set it aside before the other markers are read.
    mono: list[str] = []

    def keep(match: re.Match[str]) -> str:
        mono.append(f"<code>{match.group(1)}</code>")
        return f"\x00{len(mono) - 1}\x00"

    out = _MONO.sub(keep, escaped)
    for pattern, tag in _SPANS:
        out = pattern.sub(rf"<{tag}>\1</{tag}>", out)
    out = _SLOT.sub(lambda m: mono[int(m.group(1))], out)
    return Markup(out)  # built from escaped text and our own tags only

"""WhatsApp formatting rendered as HTML: markers become tags, and nothing else ever does."""

from __future__ import annotations

import re

import pytest

from wagate.dashboard.formatting import whatsapp_html

CASES = [
    # (text, html)
    ("plain text", "plain text"),
    ("*bold*", "<strong>bold</strong>"),
    ("_italic_", "<em>italic</em>"),
    ("~strike~", "<s>strike</s>"),
    ("```mono```", "<code>mono</code>"),
    ("Yes! *Order 4521* ships _today_.", "Yes! <strong>Order 4521</strong> ships <em>today</em>."),
    ("*_both_*", "<strong><em>both</em></strong>"),
    ("_*both*_", "<em><strong>both</strong></em>"),
    ("*a*", "<strong>a</strong>"),
    ("(*aside*)", "(<strong>aside</strong>)"),
    # Markers inside words, or not closed, stay as typed (as on a phone).
    ("snake_case_name", "snake_case_name"),
    ("2*3*4", "2*3*4"),
    ("a * b * c", "a * b * c"),
    ("*not closed", "*not closed"),
    ("* spaced *", "* spaced *"),
    ("**", "**"),
    # A span does not cross a line break; the break itself is kept (CSS shows it).
    ("*one\ntwo*", "*one\ntwo*"),
    ("*one*\n_two_", "<strong>one</strong>\n<em>two</em>"),
    # Monospace is verbatim: no formatting inside, and it may span lines.
    ("```*not bold*```", "<code>*not bold*</code>"),
    ("```a\nb```", "<code>a\nb</code>"),
    ("```", "```"),
    # Injection attempts come out as text.
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("*<img src=x onerror=alert(1)>*", "<strong>&lt;img src=x onerror=alert(1)&gt;</strong>"),
    ('_" onmouseover="alert(1)_', "<em>&#34; onmouseover=&#34;alert(1)</em>"),
    ("```</code><script>x</script>```", "<code>&lt;/code&gt;&lt;script&gt;x&lt;/script&gt;</code>"),
    ("~<b>~ & *&amp;*", "<s>&lt;b&gt;</s> &amp; <strong>&amp;amp;</strong>"),
    ("it's *ok*", "it&#39;s <strong>ok</strong>"),
    ("\x000\x00 *x*", "0 <strong>x</strong>"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "html"), CASES)
def test_whatsapp_html(text: str, html: str) -> None:
    assert str(whatsapp_html(text)) == html


def test_none_is_empty() -> None:
    assert str(whatsapp_html(None)) == ""


@pytest.mark.parametrize("text", [t for t, _ in CASES])
def test_only_our_tags_come_out(text: str) -> None:
    html = str(whatsapp_html(text))
    tags = re.findall(r"</?([a-zA-Z]+)[^>]*>", html)
    assert set(tags) <= {"strong", "em", "s", "code"}
    assert re.search(r"<(strong|em|s|code) ", html) is None  # no attributes, ever

"""Untrusted text to safe HTML: sanitised markdown, and word-level differences, always escaped."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from html import unescape

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

# Only what clinical answers need; no images (a src is a request to anywhere), no raw HTML.
_TAGS = {
    "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "del",
}
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
_SCHEMES = {"http", "https", "mailto"}
MAX_DIFF_CHARS = 30_000
# Highlighting differences is offered for responses sharing at least this share of their words
# (difflib's ratio): below it nearly every word is marked, which is noise, not help.
MIN_DIFF_SIMILARITY = 0.6
_WORDS = re.compile(r"\s+|[^\s]+")
_BULLET = re.compile(r"<li>")
_BLOCK_END = re.compile(r"</(?:p|li|h[1-6]|pre|blockquote|tr|ul|ol|table)>|<br\s*/?>|<hr\s*/?>")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML in a response is shown as text, never parsed as markup.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> Markup:
    """Markdown to HTML that can hold no script, event handler, style or javascript: link."""
    html = _parser().render(text)
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(clean)  # noqa: S704 - nh3 has just sanitised it


def rendered_text(text: str) -> str:
    """What a reader sees of the markdown: its text, one line per block, list items bulleted."""
    html = _parser().render(text)  # raw HTML in `text` arrives here escaped, as text
    html = _BULLET.sub("• ", html)
    html = _BLOCK_END.sub("\n", html)
    plain = unescape(nh3.clean(html, tags=set()))  # tags dropped, their text kept
    return _BLANK_LINES.sub("\n\n", plain).strip()


def _mark(tokens: list[str], changed: set[int]) -> Markup:
    out = []
    for i, token in enumerate(tokens):
        piece = escape(token)
        out.append(Markup("<mark>{}</mark>").format(piece) if i in changed and token.strip() else piece)
    return Markup("").join(out)


def word_diff(text: str, other: str, *, min_similarity: float = 0.0) -> Markup | None:
    """`text`, escaped, with the words that `other` lacks marked.

    None when either is too long to diff, or when fewer than `min_similarity` of their words
    match: marking nearly every word helps nobody.
    """
    if len(text) > MAX_DIFF_CHARS or len(other) > MAX_DIFF_CHARS:
        return None
    mine, theirs = _WORDS.findall(text), _WORDS.findall(other)
    words = [t for t in mine if t.strip()], [t for t in theirs if t.strip()]
    if min_similarity > 0 and _similarity(*words) < min_similarity:
        return None
    matcher = difflib.SequenceMatcher(a=mine, b=theirs, autojunk=False)
    changed: set[int] = set()
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            changed.update(range(i1, i2))
    return _mark(mine, changed)


def _similarity(a: list[str], b: list[str]) -> float:
    return difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio() if a or b else 1.0


def diff_views(texts: list[str]) -> list[Markup | None]:
    """Each text's rendered words marked against a reference (the first against the second, the
    rest against the first); None where the two are too long or too different to compare."""
    if len(texts) < 2:
        return [None for _ in texts]
    shown = [rendered_text(t) for t in texts]
    return [
        word_diff(t, shown[1] if i == 0 else shown[0], min_similarity=MIN_DIFF_SIMILARITY)
        for i, t in enumerate(shown)
    ]

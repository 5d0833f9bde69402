"""Untrusted text to safe HTML: sanitised markdown, and word-level differences, always escaped."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

# Only what clinical answers need; no images (a src is a request to anywhere), no raw HTML.
_TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "del",
}
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
_SCHEMES = {"http", "https", "mailto"}
MAX_DIFF_CHARS = 30_000
_WORDS = re.compile(r"\s+|[^\s]+")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML in a response is shown as text, never parsed as markup.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


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


def _mark(tokens: list[str], changed: set[int]) -> Markup:
    out = []
    for i, token in enumerate(tokens):
        piece = escape(token)
        out.append(
            Markup("<mark>{}</mark>").format(piece) if i in changed and token.strip() else piece
        )
    return Markup("").join(out)


def word_diff(text: str, other: str) -> Markup | None:
    """`text`, escaped, with the words that `other` lacks marked; None when too long to diff."""
    if len(text) > MAX_DIFF_CHARS or len(other) > MAX_DIFF_CHARS:
        return None
    mine, theirs = _WORDS.findall(text), _WORDS.findall(other)
    matcher = difflib.SequenceMatcher(a=mine, b=theirs, autojunk=False)
    changed: set[int] = set()
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            changed.update(range(i1, i2))
    return _mark(mine, changed)


def diff_views(texts: list[str]) -> list[Markup | None]:
    """Each text marked against a reference: the first against the second, the rest against the first."""
    if len(texts) < 2:
        return [None for _ in texts]
    return [word_diff(t, texts[1] if i == 0 else texts[0]) for i, t in enumerate(texts)]


@lru_cache(maxsize=512)
def diff_views_cached(texts: tuple[str, ...]) -> tuple[Markup | None, ...]:
    """`diff_views`, computed once per set of texts in this process (the texts never change)."""
    return tuple(diff_views(list(texts)))


@lru_cache(maxsize=256)
def render_markdown_cached(text: str) -> Markup:
    """`render_markdown` for texts shown again and again (a campaign's guidelines)."""
    return render_markdown(text)

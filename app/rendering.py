"""Untrusted text to safe HTML: sanitised markdown, and word-level differences, always escaped."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
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
# Highlighting differences is offered for responses sharing at least this share of their words:
# below it nearly every word is marked, which is noise, not help. (The demo's near-identical
# pairs share 88-96 %, its other responses at most 33 %.)
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


def plain_text(html: str) -> str:
    """What a reader sees of rendered (sanitised) HTML: its text, one line per block, bulleted."""
    html = _BULLET.sub("\u2022 ", html)
    html = _BLOCK_END.sub("\n", html)
    plain = unescape(nh3.clean(html, tags=set()))  # tags dropped, their text kept
    return _BLANK_LINES.sub("\n\n", plain).strip()


def similarity(text: str, other: str) -> float:
    """Share of words two texts have in common, order aside (difflib's quick_ratio): O(length)."""
    mine = Counter(w.lower() for w in _WORDS.findall(text) if w.strip())
    theirs = Counter(w.lower() for w in _WORDS.findall(other) if w.strip())
    total = sum(mine.values()) + sum(theirs.values())
    return 2 * sum((mine & theirs).values()) / total if total else 1.0


def _reference(index: int) -> int:
    return 1 if index == 0 else 0


def diff_offered(htmls: Sequence[str]) -> bool:
    """Whether highlighting differences helps: some response is near-identical to its reference."""
    if len(htmls) < 2:
        return False
    texts = [plain_text(h) for h in htmls]
    return any(
        similarity(t, texts[_reference(i)]) >= MIN_DIFF_SIMILARITY for i, t in enumerate(texts)
    )


def _mark(tokens: list[str], changed: set[int]) -> Markup:
    out = []
    for i, token in enumerate(tokens):
        piece = escape(token)
        out.append(Markup("<mark>{}</mark>").format(piece) if i in changed and token.strip() else piece)
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


def diff_views(htmls: Sequence[str]) -> list[Markup | None]:
    """Each response's rendered text with the words its reference lacks marked (the first
    against the second, the rest against the first); None where the two are too long or too
    different (under MIN_DIFF_SIMILARITY) for marking to help."""
    if len(htmls) < 2:
        return [None for _ in htmls]
    texts = [plain_text(h) for h in htmls]
    out: list[Markup | None] = []
    for i, text in enumerate(texts):
        other = texts[_reference(i)]
        similar = similarity(text, other) >= MIN_DIFF_SIMILARITY
        out.append(word_diff(text, other) if similar else None)
    return out


@lru_cache(maxsize=512)
def diff_views_cached(htmls: tuple[str, ...]) -> tuple[Markup | None, ...]:
    """`diff_views`, computed once per set of responses in this process (they never change)."""
    return tuple(diff_views(htmls))


@lru_cache(maxsize=4096)
def diff_offered_cached(htmls: tuple[str, ...]) -> bool:
    """`diff_offered`, decided once per set of responses in this process."""
    return diff_offered(htmls)


@lru_cache(maxsize=256)
def render_markdown_cached(text: str) -> Markup:
    """`render_markdown` for texts shown again and again (a campaign's guidelines)."""
    return render_markdown(text)

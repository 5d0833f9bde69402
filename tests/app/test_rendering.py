"""Untrusted response text never becomes live markup."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from app.rendering import diff_offered, diff_views, render_markdown, word_diff

PAYLOADS = [
    "<script>window.pwned = 1</script>",
    '<img src=x onerror="window.pwned = 1">',
    "[click](javascript:window.pwned=1)",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    "![x](https://evil.example/track.png)",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
]


class _Elements(HTMLParser):
    """Collects the elements and attributes a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_are_inert(payload: str) -> None:
    parser = _Elements()
    parser.feed(str(render_markdown(payload)))
    for tag, attrs in parser.found:
        assert tag not in {"script", "img", "svg", "iframe", "div", "style"}
        assert not any(name.startswith("on") or name == "style" for name in attrs)
        href = (attrs.get("href") or "").strip().lower()
        assert not href or href.startswith(("http:", "https:", "mailto:")), href


def test_markdown_still_renders_clinical_formatting() -> None:
    html = str(render_markdown("**Call 911** now.\n\n- aspirin 300 mg\n- [NICE](https://nice.org.uk)"))
    assert "<strong>Call 911</strong>" in html and "<li>aspirin 300 mg</li>" in html
    assert 'href="https://nice.org.uk"' in html and "noopener" in html


def test_raw_html_is_shown_as_text() -> None:
    assert "&lt;b&gt;" in str(render_markdown("<b>bold?</b>"))


def test_word_diff_marks_only_the_changed_words_and_escapes() -> None:
    a = "Take 5 mg <b>daily</b> with food"
    b = "Take 50 mg <b>daily</b> with food"
    marked = str(word_diff(a, b))
    assert "<mark>5</mark>" in marked and "&lt;b&gt;daily&lt;/b&gt;" in marked
    assert marked.count("<mark>") == 1


def test_diff_views_compare_against_a_reference_and_skip_huge_texts() -> None:
    first, second, third = diff_views(["a b c", "a x c", "a b d"])
    assert "<mark>b</mark>" in str(first) and "<mark>x</mark>" in str(second)
    assert "<mark>d</mark>" in str(third)
    assert word_diff("x" * 40_000, "y") is None


def test_differences_are_marked_on_the_rendered_text_not_the_markdown() -> None:
    pair = [render_markdown("**Take 5 mg** daily.\n\n- with food"), render_markdown("**Take 50 mg** daily.\n\n- with food")]
    first, second = diff_views(pair)
    assert diff_offered(pair)
    assert "**" not in str(first) and "- with" not in str(first) and "• with food" in str(first)
    assert "<mark>5</mark>" in str(first) and "<mark>50</mark>" in str(second)
    assert str(first).count("<mark>") == 1


def test_responses_too_different_get_no_highlighting() -> None:
    near = "Chest pain with sweating: call emergency services now and chew aspirin."
    other = "Rest, drink water, and see your GP next week if the discomfort continues."
    assert diff_views([near, other]) == [None, None] and not diff_offered([near, other])
    three = diff_views([near, near.replace("aspirin", "ibuprofen"), other])
    assert three[0] is not None and three[1] is not None and three[2] is None

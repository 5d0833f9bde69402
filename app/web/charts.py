"""Charts as server-rendered SVG (no script, no CDN): bars for counts, a line for a rate."""

from __future__ import annotations

from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 180, 28


def daily_chart(days: list[tuple[date, int, float | None]], *, title: str) -> Markup:
    """Judgments per day as bars; agreement with the majority (0..1) as a line over them."""
    if not days:
        return Markup("")
    n = len(days)
    step = (WIDTH - 2 * PAD) / n
    top = max(count for _, count, _ in days) or 1
    bars, points = [], []
    for i, (day, count, agreement) in enumerate(days):
        h = (HEIGHT - 2 * PAD) * count / top
        x = PAD + i * step
        bars.append(
            f'<rect class="bar" x="{x + step * 0.15:.1f}" y="{HEIGHT - PAD - h:.1f}" '
            f'width="{step * 0.7:.1f}" height="{h:.1f}"><title>{day}: {count} judgments'
            f"</title></rect>"
        )
        if agreement is not None:
            y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * agreement
            points.append(f"{x + step / 2:.1f},{y:.1f}")
    line = f'<polyline class="line" points="{" ".join(points)}"/>' if len(points) > 1 else ""
    labels = (
        f'<text x="{PAD}" y="{HEIGHT - 8}">{days[0][0]}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">{days[-1][0]}</text>'
        f'<text x="4" y="{PAD - 8}">max {top}/day</text>'
        f'<text x="{WIDTH - 4}" y="{PAD - 8}" text-anchor="end">line: agreement 0–1</text>'
    )
    axis = f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"/>'
    svg = (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f"{axis}{''.join(bars)}{line}{labels}</svg>"
    )
    return Markup(svg)  # noqa: S704 - built from numbers and dates only, the title escaped

"""Charts as server-rendered SVG (no script, no CDN): daily bars for the console, labelled lines for rounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


LINE_WIDTH, LINE_HEIGHT = 380, 180
LEFT, RIGHT, TOP, BOTTOM = 60, 96, 28, 30  # room for the y ticks, end labels, title, x ticks
Point = tuple[float, float]


@dataclass(frozen=True)
class Chart:
    """One chart: a title (what it shows), the x axis name, and named lines of (x, y) points."""

    title: str
    x_label: str
    lines: dict[str, Sequence[Point]]

    @property
    def empty(self) -> bool:
        """True when no line has a point."""
        return not any(self.lines.values())


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _span(values: list[float]) -> tuple[float, float]:
    """The axis range; a single value (one epoch, one step) sits mid-axis, not on an edge."""
    low, high = min(values), max(values)
    if high > low:
        return low, high
    pad = max(abs(low) * 0.1, 0.5)
    return low - pad, high + pad


def render_chart(chart: Chart) -> Markup:
    """The chart as an accessible inline SVG (role=img, its title as the label)."""
    points = [p for line in chart.lines.values() for p in line]
    if not points:
        return Markup('<p class="muted">{}: no data yet.</p>').format(chart.title)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    (x0, x1), (y0, y1) = _span(xs), _span(ys)
    plot_w, plot_h = LINE_WIDTH - LEFT - RIGHT, LINE_HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> str:
        px = LEFT + (x - x0) / (x1 - x0) * plot_w
        py = TOP + plot_h - (y - y0) / (y1 - y0) * plot_h
        return f"{px:.1f},{py:.1f}"

    parts = [
        f'<svg class="line-chart" viewBox="0 0 {LINE_WIDTH} {LINE_HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="chart-title" x="{LEFT}" y="16">{escape(chart.title)}</text>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{_fmt(y1)}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">{_fmt(y0)}</text>',
        f'<text class="tick" x="{LEFT}" y="{LINE_HEIGHT - 8}">{_fmt(x0)}</text>',
        f'<text class="tick" x="{LEFT + plot_w}" y="{LINE_HEIGHT - 8}" text-anchor="end">{_fmt(x1)}</text>',
        f'<text class="tick" x="{LEFT + plot_w / 2}" y="{LINE_HEIGHT - 8}" text-anchor="middle">'
        f"{escape(chart.x_label)}</text>",
    ]
    for n, (name, line) in enumerate(chart.lines.items()):
        if not line:
            continue
        coords = " ".join(at(x, y) for x, y in line)
        parts.append(f'<polyline class="series s{n % 4}" fill="none" points="{coords}"/>')
        end_x, end_y = (float(v) for v in at(*line[-1]).split(","))
        # A dot at the last point: the value the label names, visible even as a lone point.
        parts.append(f'<circle class="series s{n % 4}" cx="{end_x:.1f}" cy="{end_y:.1f}" r="3"/>')
        parts.append(
            f'<text class="end-label s{n % 4}" x="{end_x + 4:.1f}" y="{end_y + 4:.1f}">'
            f"{escape(name)} {_fmt(line[-1][1])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above

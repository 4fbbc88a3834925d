"""The program's charts, drawn on the server as SVG by pygal (docs/ARCHITECTURE.md).

No script reaches the browser: pygal's tooltips need its JavaScript from a CDN, so the
charts are drawn with `js=[]` and the small inline config script pygal writes anyway is
removed (the console's Content-Security-Policy allows no inline script). Every chart is
followed on the page by a table of the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pygal
from markupsafe import Markup
from pygal.style import Style

from services.console.formatting import month, number

_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#8795a1",
    opacity=".85",
    opacity_hover="1",
    colors=("#2f6f9f", "#d97b29", "#8e3b46", "#3f8f5a", "#6b5b95"),
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    title_font_size=16,
    value_font_size=12,
)


def _config(**extra: object) -> dict[str, object]:
    return {
        "js": [],
        "disable_xml_declaration": True,
        "style": STYLE,
        "width": 800,
        "height": 360,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 3,
        "value_formatter": lambda v: number(int(v)) if v is not None else "",
        "show_minor_x_labels": False,
        "truncate_label": -1,
        "truncate_legend": -1,
        **extra,
    }


def _svg(chart: pygal.graph.graph.Graph) -> Markup:
    return Markup(_SCRIPT.sub("", chart.render(is_unicode=True)))  # pygal escapes its text


def _months(labels: Sequence[str]) -> tuple[list[str], list[str]]:
    shown = [month(m) for m in labels]
    # at most 9 labels on the axis (they fit a phone too); the table has every month
    step = max(1, -(-len(shown) // 9))
    return shown, shown[::step]


def liability(months: Sequence[str], outstanding: Sequence[int]) -> Markup:
    labels, major = _months(months)
    chart = pygal.Line(**_config(fill=True, show_legend=False, x_label_rotation=0))
    chart.x_labels = labels
    chart.x_labels_major = major
    chart.add("outstanding", list(outstanding))
    return _svg(chart)


def points_per_month(
    months: Sequence[str],
    issued: Sequence[int],
    redeemed: Sequence[int],
    expired: Sequence[int],
    donated: Sequence[int] = (),
) -> Markup:
    labels, major = _months(months)
    chart = pygal.Bar(**_config())
    chart.x_labels = labels
    chart.x_labels_major = major
    chart.add("issued", list(issued))
    chart.add("redeemed", list(redeemed))
    chart.add("expired", list(expired))
    if any(donated):
        chart.add("donated", list(donated))
    return _svg(chart)


def nps(names: Sequence[str], scores: Sequence[float | None]) -> Markup:
    """Bars from -100 to +100, the first name at the top."""
    chart = pygal.HorizontalBar(
        **_config(
            show_legend=False,
            range=(-100, 100),
            width=480,
            height=max(140, 34 * len(names) + 60),
            value_formatter=lambda v: f"{v:+.0f}" if v is not None else "no answers",
            print_values=True,
        )
    )
    chart.x_labels = [name or "(no store)" for name in reversed(names)]
    chart.add("NPS", [None if s is None else round(s, 1) for s in reversed(scores)])
    return _svg(chart)


def goodwill(months: Sequence[str], points: Sequence[int]) -> Markup:
    labels, major = _months(months)
    chart = pygal.Bar(**_config(show_legend=False, height=280))
    chart.x_labels = labels
    chart.x_labels_major = major
    chart.add("goodwill", list(points))
    return _svg(chart)

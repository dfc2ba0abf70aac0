"""Inline SVG charts rendered on the server: no script, no font or asset from anywhere else."""

from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from funding.console.templatetags.console import money_format

BAR_COLOUR = "#417690"
SECOND_COLOUR = "#e4a11b"
DANGER_COLOUR = "#ba2121"


def utilisation_bars(items: list[tuple[str, Decimal | None]], *, title: str) -> SafeString:
    """Horizontal bars, one per company: percent of the effective limit in use (100% marked)."""
    row, label_w, bar_w = 22, 120, 360
    height = row * max(len(items), 1) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 70}" '
        f'height="{height}" viewBox="0 0 {label_w + bar_w + 70} {height}" class="console-chart">',
        format_html("<title>{}</title>", title),
    ]
    for i, (label, value) in enumerate(items):
        y = i * row + 5
        pct = value if value is not None else Decimal(0)
        width = int(min(pct, Decimal(100)) * bar_w / 100)
        colour = DANGER_COLOUR if pct >= 90 else BAR_COLOUR
        shown = "—" if value is None else f"{value}%"
        parts.append(format_html(
            '<text x="0" y="{}" font-size="12" dominant-baseline="middle">{}</text>'
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>'
            '<text x="{}" y="{}" font-size="11" dominant-baseline="middle">{}</text>',
            y + 8, label[:18], label_w, y, width, row - 6, colour, label, shown,
            label_w + width + 4, y + 8, shown,
        ))
    axis_y = row * max(len(items), 1) + 8
    parts.append(
        f'<line x1="{label_w + bar_w}" y1="0" x2="{label_w + bar_w}" y2="{axis_y}" stroke="#999" '
        f'stroke-dasharray="3,3"/>'
        f'<text x="{label_w + bar_w - 14}" y="{axis_y + 14}" font-size="11">100%</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(str(p) for p in parts))  # noqa: S308 - every label went through format_html


def daily_bars(points: list[dict], *, title: str, first_label: str, second_label: str) -> SafeString:
    """Paired vertical bars per day (disbursed, repaid), scaled to the largest value."""
    width, height, top, bottom = 720, 220, 20, 40
    n = max(len(points), 1)
    slot = (width - 60) / n
    largest = max([p["disbursed"] for p in points] + [p["repaid"] for p in points] + [Decimal(1)])
    plot_h = height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="console-chart">',
        format_html("<title>{}</title>", title),
        format_html(
            '<rect x="60" y="2" width="10" height="10" fill="{}"/>'
            '<text x="74" y="11" font-size="11">{}</text>'
            '<rect x="200" y="2" width="10" height="10" fill="{}"/>'
            '<text x="214" y="11" font-size="11">{}</text>',
            BAR_COLOUR, first_label, SECOND_COLOUR, second_label,
        ),
        format_html('<text x="0" y="{}" font-size="10">{}</text>', top + 10, money_format(largest)),
        f'<line x1="58" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#999"/>',
    ]
    bar = max(slot / 2 - 1, 1)
    for i, point in enumerate(points):
        x = 60 + i * slot
        for j, (key, colour) in enumerate((("disbursed", BAR_COLOUR), ("repaid", SECOND_COLOUR))):
            h = float(point[key] / largest) * plot_h if largest else 0  # pixels only, never money
            parts.append(format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}</title></rect>',
                f"{x + j * bar:.1f}", f"{top + plot_h - h:.1f}", f"{bar:.1f}", f"{h:.1f}", colour,
                point["date"].isoformat(),
                first_label if j == 0 else second_label, money_format(point[key]),
            ))
        if i % 5 == 0 or i == n - 1:
            parts.append(format_html(
                '<text x="{}" y="{}" font-size="10">{}</text>', f"{x:.1f}", height - bottom + 14,
                point["date"].strftime("%m-%d"),
            ))
    parts.append("</svg>")
    return mark_safe("".join(str(p) for p in parts))  # noqa: S308 - every label went through format_html


__all__ = ["daily_bars", "escape", "utilisation_bars"]

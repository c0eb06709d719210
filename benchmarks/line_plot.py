"""A small line-chart PNG with Pillow only (matplotlib is not a dependency of napari-vlsm).

``line_chart(path, panels)``: panels side by side, each ``{"title", "xlabel", "ylabel",
"lines": {name: [(x, y), ...]}}``; one shared legend under them. Enough for a learning curve.
"""

from __future__ import annotations

from pathlib import Path

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]
PANEL_W, PANEL_H, MARGIN = 520, 360, 60


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _bounds(panel) -> tuple[float, float, float, float]:
    xs = [x for pts in panel["lines"].values() for x, _ in pts]
    ys = [y for pts in panel["lines"].values() for _, y in pts]
    y0, y1 = min(ys), max(ys)
    pad = max(0.02, 0.1 * (y1 - y0))
    return min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1, max(0.0, y0 - pad), y1 + pad


def _panel(draw, ox: int, panel, styles) -> None:
    x0, x1, y0, y1 = _bounds(panel)
    left, top, right, bottom = ox + MARGIN, 40, ox + PANEL_W - 20, PANEL_H - 50
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text((ox + PANEL_W // 2, 12), panel["title"], fill=(0, 0, 0), font=_font(16), anchor="mt")
    draw.text(((left + right) // 2, PANEL_H - 18), panel["xlabel"], fill=(0, 0, 0), font=_font(13), anchor="mm")
    draw.text((ox + 8, top - 22), panel["ylabel"], fill=(0, 0, 0), font=_font(13))

    def at(x, y):
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    for k in range(5):  # y ticks
        y = y0 + k * (y1 - y0) / 4
        _, py = at(x0, y)
        draw.line([left - 4, py, left, py], fill=(0, 0, 0))
        draw.line([left, py, right, py], fill=(230, 230, 230))
        draw.text((left - 6, py), f"{y:.2f}", fill=(0, 0, 0), font=_font(11), anchor="rm")
    for x in sorted({x for pts in panel["lines"].values() for x, _ in pts}):
        px, _ = at(x, y0)
        draw.line([px, bottom, px, bottom + 4], fill=(0, 0, 0))
        draw.text((px, bottom + 6), f"{x:g}", fill=(0, 0, 0), font=_font(11), anchor="mt")
    for name, pts in panel["lines"].items():
        colour, dashed = styles[name]
        xy = [at(x, y) for x, y in pts]
        for a, b in zip(xy, xy[1:]):
            if dashed:  # dashes: "without learning"
                for t in range(0, 10, 2):
                    p, q = t / 10, (t + 1) / 10
                    draw.line([a[0] + (b[0] - a[0]) * p, a[1] + (b[1] - a[1]) * p,
                               a[0] + (b[0] - a[0]) * q, a[1] + (b[1] - a[1]) * q], fill=colour, width=2)
            else:
                draw.line([a, b], fill=colour, width=3)
        for x, y in xy:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)


def line_chart(path, panels: list[dict], dashed=lambda name: False, group=lambda name: name) -> Path:
    """``group(name)``: lines of one group share a colour (e.g. one order, with and without learning)."""
    from PIL import Image, ImageDraw

    names = list(dict.fromkeys(n for p in panels for n in p["lines"]))
    groups = list(dict.fromkeys(group(n) for n in names))
    styles = {n: (COLOURS[groups.index(group(n)) % len(COLOURS)], dashed(n)) for n in names}
    legend_rows = (len(names) + 2) // 3
    image = Image.new("RGB", (PANEL_W * len(panels), PANEL_H + 22 * legend_rows + 10), "white")
    draw = ImageDraw.Draw(image)
    for i, panel in enumerate(panels):
        _panel(draw, i * PANEL_W, panel, styles)
    for i, name in enumerate(names):
        x, y = 20 + (i % 3) * (PANEL_W * len(panels) // 3), PANEL_H + 8 + (i // 3) * 22
        for t in range(0, 28, 8 if styles[name][1] else 28):
            draw.line([x + t, y + 7, x + min(28, t + (5 if styles[name][1] else 28)), y + 7], fill=styles[name][0], width=3)
        draw.text((x + 36, y), name, fill=(0, 0, 0), font=_font(13))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path

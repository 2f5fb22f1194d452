"""PNG figures drawn with Pillow (already a dependency): the confusion matrix, the top-losses contact sheet,
the learning-rate finder's curve. Plain and legible; no plotting library needed on a GPU box."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from engine.core.files import atomic_write_bytes
from engine.core.records import Preprocessing
from engine.data.images import load_rgb

WHITE, BLACK, GREY = (255, 255, 255), (20, 20, 20), (150, 150, 150)


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _save(img: Image.Image, path: Path) -> None:
    import io

    buf = io.BytesIO()
    # compress_level 1: a few percent larger than the default 6 and several times faster to write — it runs
    # at the end of every training run, including a cached probe that otherwise takes a fraction of a second
    img.save(buf, format="PNG", compress_level=1)
    atomic_write_bytes(Path(path), buf.getvalue())


def _short(text: str, n: int = 14) -> str:
    """Shortened from the middle: Oxford's breeds differ at both ends (american_pit_bull_terrier,
    staffordshire_bull_terrier), so cutting the end would make names alike."""
    if len(text) <= n:
        return text
    head = (n - 1 + 1) // 2
    return text[:head] + "…" + text[len(text) - (n - 1 - head):]


def confusion_png(confusion: list[list[int]], classes: list[str], path: Path) -> None:
    """Rows = true class, columns = predicted; each cell shaded by its share of the row."""
    c = len(classes)
    cell = max(14, min(48, 720 // max(c, 1)))
    font = _font(max(8, min(12, cell // 3)))
    label_w, top = 110, 30
    img = Image.new("RGB", (label_w + cell * c + 10, top + label_w + cell * c + 10), WHITE)
    d = ImageDraw.Draw(img)
    d.text((4, 4), "confusion matrix (rows: true, columns: predicted)", fill=BLACK, font=_font(12))
    y0 = top + label_w
    for i in range(c):
        total = max(1, sum(confusion[i]))
        d.text((4, y0 + i * cell + cell // 2 - 6), _short(classes[i]), fill=BLACK, font=font)
        for j in range(c):
            share = confusion[i][j] / total
            shade = int(255 - 200 * share)
            colour = (shade, shade, 255) if i == j else (255, shade, shade)
            x, y = label_w + j * cell, y0 + i * cell
            d.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour, outline=(220, 220, 220))
            if confusion[i][j] and cell >= 20:
                d.text((x + 3, y + cell // 2 - 6), str(confusion[i][j]), fill=BLACK, font=font)
    # column labels, rotated
    for j in range(c):
        tile = Image.new("RGB", (label_w - 4, cell), WHITE)
        ImageDraw.Draw(tile).text((2, cell // 2 - 6), _short(classes[j]), fill=BLACK, font=font)
        tile = tile.rotate(90, expand=True)
        img.paste(tile, (label_w + j * cell, top))
    _save(img, path)


def top_losses_png(items: list[dict], path: Path, prep: Preprocessing | None = None, thumb: int = 128) -> None:
    """A contact sheet: each image with "true / predicted", both probabilities and the loss."""

    cols = 4
    rows = max(1, math.ceil(len(items) / cols))
    cap = 46
    img = Image.new("RGB", (cols * (thumb + 8) + 8, rows * (thumb + cap + 8) + 28), WHITE)
    d = ImageDraw.Draw(img)
    font = _font(11)
    d.text((8, 6), "top losses: true, -> predicted, prob of predicted / of true, loss" if items
           else "no mistakes: every image was classified correctly", fill=BLACK, font=_font(12))
    for k, item in enumerate(items):
        x = 8 + (k % cols) * (thumb + 8)
        y = 28 + (k // cols) * (thumb + cap + 8)
        try:
            pic = load_rgb(item["path"], min_size=thumb)
            pic.thumbnail((thumb, thumb))
            if pic.width < thumb and pic.height < thumb:  # tiny images (8 px digits): enlarge, keep pixels
                scale = thumb // max(pic.width, pic.height)
                pic = pic.resize((pic.width * max(1, scale), pic.height * max(1, scale)), Image.Resampling.NEAREST)
            img.paste(pic, (x + (thumb - pic.width) // 2, y + (thumb - pic.height) // 2))
        except Exception:  # noqa: BLE001 - a file gone since evaluation: leave its cell grey
            d.rectangle([x, y, x + thumb, y + thumb], fill=(230, 230, 230))
        wrong = item["true"] != item["predicted"]
        d.text((x, y + thumb + 2), _short(item["true"], 20), fill=BLACK, font=font)
        d.text((x, y + thumb + 16), "-> " + _short(item["predicted"], 18), fill=(190, 20, 20) if wrong else BLACK,
               font=font)
        d.text((x, y + thumb + 30), f"{item['prob_predicted']:.2f} / {item['prob_true']:.2f}  loss {item['loss']:.2f}",
               fill=GREY, font=font)
    _save(img, path)


def line_png(xs: list[float], ys: list[float], path: Path, title: str, x_label: str, y_label: str,
             log_x: bool = True, mark: float | None = None) -> None:
    """A line chart (log x by default) with an optional vertical mark, e.g. the suggested learning rate."""
    w, h, left, bottom, top, right = 640, 400, 60, 40, 30, 20
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    font = _font(11)
    d.text((left, 8), title, fill=BLACK, font=_font(13))
    pts = [(math.log10(x) if log_x else x, y) for x, y in zip(xs, ys) if x > 0 and math.isfinite(y)]
    if len(pts) >= 2:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

        def at(px, py):
            return (left + (px - x0) / (x1 - x0) * (w - left - right),
                    h - bottom - (py - y0) / (y1 - y0) * (h - top - bottom))

        d.rectangle([left, top, w - right, h - bottom], outline=GREY)
        d.line([at(px, py) for px, py in pts], fill=(30, 90, 200), width=2)
        for k in range(math.ceil(x0), math.floor(x1) + 1):
            tx = at(k, y0)[0]
            d.line([(tx, h - bottom), (tx, h - bottom + 4)], fill=GREY)
            d.text((tx - 14, h - bottom + 6), f"1e{k}" if log_x else f"{k}", fill=BLACK, font=font)
        d.text((4, top), f"{y1:.3g}", fill=BLACK, font=font)
        d.text((4, h - bottom - 12), f"{y0:.3g}", fill=BLACK, font=font)
        if mark and mark > 0:
            mx = at(math.log10(mark) if log_x else mark, y0)[0]
            d.line([(mx, top), (mx, h - bottom)], fill=(200, 40, 40), width=1)
            d.text((mx + 4, top + 4), f"suggested {mark:.2e}", fill=(200, 40, 40), font=font)
    d.text((w // 2 - 30, h - 16), x_label, fill=BLACK, font=font)
    d.text((4, h // 2), y_label, fill=BLACK, font=font)
    _save(img, path)


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For each (speed, accuracy) point, whether it is on the Pareto front: no other point is at least as fast
    and as accurate and better in one of the two. Equal points are all on it."""
    return [not any(s >= sp and a >= ap and (s > sp or a > ap) for s, a in points) for sp, ap in points]


def tradeoff_png(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy (± its std across folds) against images/s (log scale), one labelled point per candidate; the
    Pareto front (nothing both faster and more accurate) in red, joined by a line. Rows without both numbers
    (a failed candidate) are left out."""
    w, h, left, bottom, top, right = 720, 440, 64, 44, 34, 24
    img = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(img)
    font = _font(11)
    red, blue = (200, 40, 40), (30, 90, 200)
    d.text((left, 8), title, fill=BLACK, font=_font(13))
    pts = [r for r in rows if r.get("accuracy") is not None and (r.get("images_per_s") or 0) > 0]
    if pts:
        xs = [math.log10(r["images_per_s"]) for r in pts]
        lo = [r["accuracy"] - (r.get("accuracy_std") or 0) for r in pts]
        hi = [r["accuracy"] + (r.get("accuracy_std") or 0) for r in pts]
        x0, x1 = min(xs) - 0.1, max(xs) + 0.1
        y0, y1 = max(0.0, min(lo) - 0.02), min(1.0, max(hi) + 0.02)
        y1 = y1 if y1 > y0 else y0 + 0.05

        def at(px: float, py: float) -> tuple[float, float]:
            return (left + (px - x0) / (x1 - x0) * (w - left - right),
                    h - bottom - (py - y0) / (y1 - y0) * (h - top - bottom))

        d.rectangle([left, top, w - right, h - bottom], outline=GREY)
        # 1-2-5 ticks: a comparison often spans less than a decade
        ticks = [m * 10 ** k for k in range(math.floor(x0), math.ceil(x1) + 1) for m in (1, 2, 5)]
        for t in ticks:
            if x0 <= math.log10(t) <= x1:
                tx = at(math.log10(t), y0)[0]
                d.line([(tx, h - bottom), (tx, h - bottom + 4)], fill=GREY)
                d.text((tx - 10, h - bottom + 6), f"{t:g}", fill=BLACK, font=font)
        d.text((4, top), f"{y1:.3f}", fill=BLACK, font=font)
        d.text((4, h - bottom - 12), f"{y0:.3f}", fill=BLACK, font=font)
        on_front = pareto_front([(r["images_per_s"], r["accuracy"]) for r in pts])
        front = sorted((x, r["accuracy"]) for x, r, f in zip(xs, pts, on_front) if f)
        if len(front) > 1:
            d.line([at(x, y) for x, y in front], fill=red, width=1)
        for x, r, f, a, b in zip(xs, pts, on_front, lo, hi):
            colour = red if f else blue
            cx, cy = at(x, r["accuracy"])
            d.line([at(x, max(a, y0)), at(x, min(b, y1))], fill=colour, width=1)  # ± std across folds
            d.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour if f else WHITE, outline=colour, width=2)
            d.text((cx + 7, cy - 7), _short(r["backbone"], 34), fill=colour, font=font)
        d.text((w - right - 250, h - 16), "filled red: Pareto front (none faster and better)", fill=red,
               font=font)
    else:
        d.text((left, h // 2), "no candidate was scored", fill=BLACK, font=font)
    d.text((left, h - 16), "images/s (log scale); bars: ± std across folds", fill=BLACK, font=font)
    d.text((4, h // 2), "accuracy", fill=BLACK, font=font)
    _save(img, path)

"""The report of a 37-class run (Oxford-IIIT Pets' breeds, generated): under 10 MB with every picture embedded,
and — in a real browser, headless Chromium with the network cut off — rendered whole, asking for nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.data import OXFORD_PETS_CLASSES
from PIL import Image
from report_browser import CHROMIUM, chromium_dom, chromium_screenshot, make_37_class_run, write_report
from report_html import parse

MAX_BYTES = 10_000_000


@pytest.fixture(scope="module")
def pets_report(tmp_path_factory) -> dict:
    run_dir = make_37_class_run(tmp_path_factory.mktemp("pets37"))
    return write_report(run_dir)


def test_a_37_class_report_holds_every_section_under_10_mb(pets_report):
    path = Path(pets_report["path"])
    assert path.stat().st_size == pets_report["bytes"] < MAX_BYTES
    page = parse(path.read_text(encoding="utf-8"))
    confusion = page.one("section", data_section="confusion")
    assert int(confusion.attrs["data-classes"]) == 37
    assert [th.text() for th in confusion.all("th", **{"class": "col"})] == sorted(OXFORD_PETS_CLASSES)
    assert page.one("section", data_section="top-losses").all("figure")
    audit = page.one("section", data_section="audit")  # the dataset was audited: its suspects, pictured
    assert audit.all("img") or "0 label suspects" in " ".join(audit.text().split())
    pictures = page.all("img")
    assert pictures and all(int(p.attrs["width"]) <= 224 and int(p.attrs["height"]) <= 224 for p in pictures)


@pytest.mark.system
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_chromium_renders_it_with_the_network_off(pets_report, tmp_path):
    png = tmp_path / "report.png"
    asked = chromium_screenshot(Path(pets_report["path"]), png, tmp_path)
    assert asked == []  # the page loaded nothing: no font, script, style or image from anywhere
    shot = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    assert shot.shape == (2400, 1280)
    assert shot[:600].std() > 20 and shot[1200:].std() > 20  # drawn top to bottom, not a blank page
    # the network log does show a page that reaches out
    outside = tmp_path / "outside.html"
    outside.write_text('<img src="https://cdn.example.com/logo.png"><p>x</p>')
    assert chromium_screenshot(outside, tmp_path / "outside.png", tmp_path / "second") == [
        "https://cdn.example.com/logo.png"]


# Clicks the per-class table's F1 heading twice and writes the column's order after each click into <body>.
CLICK_F1 = """<script>
const table = document.querySelector('table[data-table="per-class"]');
const th = Array.from(table.tHead.rows[0].cells).find((c) => c.textContent.trim().startsWith("F1"));
const order = () => Array.from(table.tBodies[0].rows, (r) => r.cells[th.cellIndex].dataset.value).join(";");
th.click(); document.body.dataset.first = order(); document.body.dataset.firstSort = th.getAttribute("aria-sort");
th.click(); document.body.dataset.second = order();
</script></body>"""


@pytest.mark.system
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_a_click_on_a_heading_sorts_the_table(pets_report, tmp_path):
    page = tmp_path / "clicked.html"
    page.write_text(Path(pets_report["path"]).read_text(encoding="utf-8").replace("</body>", CLICK_F1))
    body = parse(chromium_dom(page, tmp_path)).one("body").attrs

    def values(text: str) -> list[float]:
        return [float(v) if v else float("-inf") for v in text.split(";")]  # a class with no F1 sorts last

    first, second = values(body["data-first"]), values(body["data-second"])
    assert len(first) == 37 and first == sorted(first, reverse=True) and body["data-first-sort"] == "descending"
    assert second == sorted(first) and len(set(first)) > 1

"""The README's picture of `tlbench report`: a 37-class run (the Oxford-IIIT Pets breeds, generated), its
dataset audited, its report rendered by headless Chromium with the network cut off.

    .venv/bin/python bench/report_screenshot.py      # needs Debian's chromium (apt-get install chromium)

Writes bench/results/report_37class.png (1280x2400, the top of the report, 256 colours to stay small) and
bench/results/report_37class.json (the report's size, what the page asked of the network, the timings).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # the generated dataset and the browser helper the tests use

from PIL import Image  # noqa: E402
from report_browser import CHROMIUM, chromium_screenshot, make_37_class_run, write_report  # noqa: E402

OUT = ROOT / "bench" / "results"


def main() -> int:
    if CHROMIUM is None:
        print("no chromium here: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ.update(TLBENCH_OFFLINE="1", TLBENCH_CACHE=str(base / "cache"), TLBENCH_RUNS=str(base / "runs"),
                          TORCH_HOME=str(base / "torch"))
        t0 = time.perf_counter()
        run_dir = make_37_class_run(base)
        t1 = time.perf_counter()
        result = write_report(run_dir)
        t2 = time.perf_counter()
        png = base / "report.png"
        asked = chromium_screenshot(Path(result["path"]), png, base)
        t3 = time.perf_counter()
        Image.open(png).convert("RGB").quantize(256).save(OUT / "report_37class.png", optimize=True)
    record = {"what": "tlbench report of a 37-class probe run (generated 256 px images, audited), rendered by "
                      "headless Chromium with the network off", "report_bytes": result["bytes"],
              "network_requests_by_the_page": asked, "seconds_train_and_audit": round(t1 - t0, 1),
              "seconds_report": round(t2 - t1, 1), "seconds_chromium": round(t3 - t2, 1),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "date": time.strftime("%Y-%m-%d")}
    (OUT / "report_37class.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

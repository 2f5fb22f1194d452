"""The flags of `tlbench report` (engine.cli.commands.report runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag


def register(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report of a run, or a comparison of several, to "
                       "share (opens offline in any browser)",
                       description="Write one HTML file with everything a reviewer asks about a run: the recipe and "
                       "the command that reproduces it, the dataset and its split, device, precision, versions, "
                       "curves, the confusion matrix, per-class metrics, the top losses with Grad-CAM, robustness, "
                       "attacks, dreams and the dataset audit's suspects. Images are embedded; nothing is loaded "
                       "from the network.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their names under the runs folder); "
                   "several make a comparison page first")
    p.add_argument("--out", metavar="FILE.html", help="where to write it (default: RUN/report.html; for several "
                   "runs <runs folder>/<time>-compare-N-runs.html); a folder gets report.html inside")
    p.add_argument("--no-gradcam", dest="gradcam", action="store_false",
                   help="leave out the Grad-CAM overlays of the top losses (they load the run's model on the CPU)")
    add_json_flag(p)

"""The flags of `tlbench robustness` (engine.cli.commands.robustness runs it)."""

from __future__ import annotations

from engine.adversarial.params import RobustnessParams
from engine.cli.common import add_json_flag
from engine.cli.fields import add_dataclass_flags


def register(sub) -> None:
    p = sub.add_parser("robustness", help="robust accuracy of a run per eps (PGD or FGSM), saved in its report",
                       description="Attack every validation image of a run at each eps and report the share "
                       "still classified correctly (eps 0 = clean accuracy). Saved in the run's report.json "
                       "under robustness.<method>-<norm>.")
    p.add_argument("run_dir", help="a run directory (runs/<…>)")
    add_dataclass_flags(p, RobustnessParams, skip={"run_dir"})
    add_json_flag(p)

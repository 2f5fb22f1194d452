"""`robustness_job(params, ctx)`: robust accuracy per eps on a run's validation split (recomputed from its
dataset, seed and val_fraction), in batches on the job's device; stored in the run's report.json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine.adversarial.attacks import run_attack
from engine.adversarial.common import fast_copy, job_dtype
from engine.adversarial.params import RobustnessParams, default_step_size, eps_text
from engine.adversarial.target import load_target_model
from engine.core.errors import ConfigError, RunError
from engine.core.events import JobStarted, ProgressAdvanced
from engine.core.files import read_json
from engine.core.runs import update_report
from engine.data.loaders import ImageFiles, auto_workers, data_loader
from engine.data.scan import scan_run_dataset
from engine.data.splits import plan_for_run
from engine.runtime.devices import describe_device
from engine.runtime.precision import precision_name

if TYPE_CHECKING:
    from engine.core.jobs import JobContext
    from engine.core.records import RunRecord

# ------------------------------------------------------------------------------------ robustness


def validation_samples(record: RunRecord, run_dir, data: str | None, ctx: JobContext | None):
    """The run's validation list: its recorded plan (engine.data.splits) replayed on its dataset (or on `data`,
    where it has moved)."""

    info = scan_run_dataset(record.dataset, data or None, ctx=ctx)
    if list(info.classes) != list(record.classes):
        raise RunError(f"The dataset at {info.root} has classes {info.classes}, but the run was trained on "
                       f"{list(record.classes)}. Pass the run's dataset with --data.")
    _, val, _ = plan_for_run(run_dir, record, info, log=ctx.log if ctx is not None else None)
    return info, val


def robustness_job(params: RobustnessParams, ctx: JobContext) -> dict:
    """Robust accuracy per eps on the run's validation split, the way Foolbox reports it: an image counts
    as robust at eps when the model classifies it correctly and no attack at eps or below changes that
    (eps 0 is the clean accuracy). Saved in the run's report.json under "robustness" -> "<method>-<norm>"."""


    params.validate()
    device_name, why = describe_device(params.device)
    device = torch.device(device_name)
    tm = load_target_model(run_dir=params.run_dir, device=device)
    dtype = job_dtype(device, params.precision, tm)
    assert tm.record is not None and tm.run_dir is not None  # loaded from a run directory: it has both
    info, val = validation_samples(tm.record, tm.run_dir, params.data, ctx)
    if params.limit:
        val = val[: params.limit]
    if not val:
        raise ConfigError(f"The validation split of {info.root} is empty: nothing to attack (an auto run that "
                          "held out no photos has none). Pass photos the model never saw with --data.")
    model = fast_copy(tm, device, tm.prep.crop_size, dtype)
    ctx.emit(JobStarted("robustness", f"{params.method} {params.norm} sweep of {tm.name}", str(tm.run_dir)))
    ctx.log(f"device: {device_name} ({why}), {precision_name(dtype)}; {len(val)} validation images; eps "
            + ", ".join(eps_text(e) for e in params.eps))
    workers = params.workers if params.workers is not None else auto_workers(device)
    loader = data_loader(ImageFiles([s.path for s in val], tm.prep), batch_size=params.batch_size,
                         num_workers=workers)
    labels_all = torch.tensor([s.label for s in val], dtype=torch.long, device="cpu")
    correct = {e: 0 for e in params.eps}
    counted, skipped = 0, []
    generator = torch.Generator().manual_seed(params.seed)
    started = time.perf_counter()
    total_work = len(val) * len(params.eps)
    for xb, idx, errors in loader:
        keep = [j for j, err in enumerate(errors) if not err]
        skipped += [{"path": val[int(idx[j])].path, "reason": errors[j]} for j, err in enumerate(errors) if err]
        if not keep:
            continue
        x = xb[keep].to(device).float().div(255)
        y = labels_all[idx[keep]].to(device)
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        for e in params.eps:  # ascending
            ctx.check()
            if e > 0:
                alpha = params.step_size if params.step_size is not None else default_step_size(
                    params.method, e, params.steps)
                adv = run_attack(model, x, y, method=params.method, eps=e, steps=params.steps, alpha=alpha,
                                 norm=params.norm, random_start=params.random_start, generator=generator,
                                 check=ctx.check)
                # An adversarial example found at a smaller eps also lies in this larger ball, so it counts
                # here too: the curve never rises because one attack run happened to do worse.
                with torch.no_grad():
                    robust = robust & (model(adv).argmax(1) == y)
            correct[e] += int(robust.sum())
            done = counted * len(params.eps) + len(keep) * (params.eps.index(e) + 1)
            ctx.progress(ProgressAdvanced("robustness", done, total_work, "image-attacks"))
        counted += len(keep)
    if counted == 0:
        raise ConfigError(f"None of the {len(val)} validation images could be read; see `tlbench scan`.")
    rows = [{"eps": e, "eps_text": eps_text(e), "accuracy": round(correct[e] / counted, 6),
             "correct": correct[e], "images": counted} for e in params.eps]
    sweep = {
        "method": params.method, "norm": params.norm,
        "steps": params.steps if params.method == "pgd" else 1,
        "step_size": params.step_size if params.step_size is not None else (
            "2.5*eps/steps" if params.method == "pgd" else "eps"),
        "random_start": params.random_start,
        "precision": precision_name(dtype),
        "dataset": str(info.root), "images": counted, "skipped": skipped,
        "eps": [r["eps"] for r in rows], "accuracy": [r["accuracy"] for r in rows], "rows": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report_path = Path(tm.run_dir) / "report.json"
    existing = read_json(report_path).get("robustness", {}) if report_path.exists() else {}
    if not isinstance(existing, dict):
        existing = {}
    update_report(tm.run_dir, {"robustness": {**existing, params.key: sweep}})
    for r in rows:
        ctx.log(f"eps {r['eps_text']:>7}: robust accuracy {r['accuracy']:.4f} ({r['correct']}/{r['images']})")
    return {"run_dir": str(tm.run_dir), "key": params.key, **sweep}


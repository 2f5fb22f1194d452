"""The training jobs: `train(config, ctx)` and `resume(run_dir, ctx)`.

`train` prepares the run (engine.train.prepare), runs the mode's loop (probe, or fine-tuning in
engine.train.finetune), records its status in status.json and returns the summary that `tlbench train --json`
prints. `resume` continues a stopped fine-tuning run from its last.pt with the settings it recorded.
Under torchrun (WORLD_SIZE > 1) every rank runs the job; rank 0 alone writes the run.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from engine.core.checkpoints import load_checkpoint
from engine.core.errors import RunError
from engine.core.files import atomic_write_json
from engine.core.jobs import JobContext, JobStopped
from engine.core.runs import load_config, read_metrics, resolve_run_dir, runs_root, write_status
from engine.runtime import distributed as D
from engine.runtime.devices import device_type
from engine.train.auto import check_resumable, choose_recipe, fit_recipe, train_chosen
from engine.train.config import TrainConfig
from engine.train.finetune import train_finetune
from engine.train.prepare import Prepared, prepare
from engine.train.probe import train_probe


def train(config: TrainConfig, ctx: JobContext) -> dict:
    """The training job: prepare, run the mode's loop, write the report, return the summary."""
    started = time.perf_counter()
    if config.mode == "auto":  # the search runs on the training split before the run directory exists
        if D.env_info().enabled:
            raise RunError("--mode auto searches recipes on cached features in one process: run it without "
                           "torchrun (torchrun is for the head, partial and full modes).")
        board, planned = choose_recipe(config, ctx)
    p = prepare(config, ctx, planned=planned if config.mode == "auto" else None)
    try:
        with recorded_status(p):
            if config.mode == "auto":
                result = train_chosen(p, board, ctx)
            elif config.mode == "probe":
                if p.dist.enabled:
                    raise RunError("--mode probe trains a linear head on cached features in seconds: run it "
                                   "without torchrun (torchrun is for the head, partial and full modes).")
                result = train_probe(p, ctx)
            else:  # the fine-tuning modes live in engine.train.finetune
                result = train_finetune(p, ctx)
            return finish(p, result, started, ctx.paused_seconds)
    finally:
        D.teardown(p.dist)


@contextlib.contextmanager
def recorded_status(p: Prepared):
    """status.json says "running" while the job runs, then "done", "stopped" or "failed" with the error
    (rank 0 writes it; the other ranks' run directory is rank 0's)."""
    if p.dist.is_main:
        write_status(p.run_dir, "running")
    try:
        yield
    except JobStopped:
        if p.dist.is_main:
            write_status(p.run_dir, "stopped")
        raise
    except BaseException as err:
        if p.dist.is_main:
            status = "stopped" if isinstance(err, KeyboardInterrupt) else "failed"
            write_status(p.run_dir, status, None if status == "stopped" else (str(err) or type(err).__name__))
        raise
    if p.dist.is_main:
        write_status(p.run_dir, "done")


def finish(p: Prepared, result: dict, started: float, paused: float = 0.0, earlier: float = 0.0) -> dict:
    """summary.json; `seconds` is the run's time without its pauses (`paused_seconds`): this job's, plus, for
    a resumed run, the `earlier` sessions' (their epochs in metrics.jsonl), so a run stopped and resumed says
    how long it trained in all, as its curves show all its epochs."""
    session = time.perf_counter() - started - paused
    summary = {"run_dir": str(p.run_dir), "classes": p.info.classes, **result,
               "seconds": round(session + earlier, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if p.resumed:
        summary.update({"session_seconds": round(session, 3), "earlier_seconds": round(earlier, 3)})
    if p.dist.is_main:
        atomic_write_json(p.run_dir / "summary.json", summary)
    return summary


def resume(run_dir: str | Path, ctx: JobContext, device: str | None = None, workers: int | None = None,
           runs_dir: str | None = None, replan: bool = False) -> dict:
    """Continue a stopped fine-tuning run from its last.pt, with the settings it recorded: its split plan
    (split.json; `replan` plans again from the dataset as it is now) and its precision.

    On a CPU with the same seed the result equals the uninterrupted run's (tests/engine/train/test_resume.py).
    """
    started = time.perf_counter()
    run_dir = resolve_run_dir(run_dir, runs_root(runs_dir))
    record = load_config(run_dir)
    # the sessions before this one: their epochs' training time (a stopped epoch's part is carried in last.pt
    # and counted in its row when it ends)
    earlier = sum(float(r.get("seconds") or 0.0) for r in read_metrics_safe(run_dir))
    if (run_dir / "summary.json").exists():
        raise RunError(f"{run_dir} already finished ({len(read_metrics_safe(run_dir))} epochs, see "
                       "summary.json): nothing to resume. Start a new run, e.g. with more --epochs.")
    if record.mode == "probe":
        raise RunError(f"{run_dir} is a probe run; a probe takes seconds on cached features. "
                       "Start it again instead of resuming.")
    if record.mode == "auto":  # the recorded recipe fitted again (seconds, on cached features), no search
        config = TrainConfig.from_dict(record.to_dict())
        config.device, config.workers = device or config.device, workers if workers is not None else config.workers
        check_resumable(run_dir, record.to_dict())
        p = prepare(config, ctx, resume_dir=run_dir, replan=replan)
        with recorded_status(p):
            return finish(p, fit_recipe(p, ctx), started, ctx.paused_seconds, earlier)
    if not (run_dir / "last.pt").exists():
        raise RunError(f"{run_dir} has no last.pt: it stopped before finishing a step. Start a new run.")
    config = TrainConfig.from_dict(record.to_dict())
    if device is not None:
        config.device = device
    if workers is not None:
        config.workers = workers
    ckpt = load_checkpoint(run_dir / "last.pt")
    if int(ckpt["epoch"]) >= (config.epochs or 0):
        raise RunError(f"{run_dir} already completed its {config.epochs} epochs. Start a new run to train longer.")
    if record.precision is None and ckpt.get("scaler") and device_type(config.device) == "cuda":
        config.precision = "fp16"  # recorded before --precision existed: its AMP was fp16 (it kept a scaler)
    p = prepare(config, ctx, resume_dir=run_dir, replan=replan)
    try:
        with recorded_status(p):
            return finish(p, train_finetune(p, ctx, resume=ckpt), started, ctx.paused_seconds, earlier)
    finally:
        D.teardown(p.dist)


def read_metrics_safe(run_dir: Path) -> list[dict]:
    try:
        return [r for r in read_metrics(run_dir) if isinstance(r, dict)]
    except ValueError:
        return []

"""`tlbench train DATASET`: train a classifier on a pretrained backbone; writes a run directory.

`tlbench train --resume RUN_DIR` continues a stopped run. Under `torchrun --nproc_per_node=N` every process
runs this command; rank 0 alone prints and writes.
"""

from __future__ import annotations

from engine.cli.common import (
    job_result,
    print_json,
    report_failure,
    run_cli_job,
    stdout_console,
)
from engine.cli.parsers.train import config_from_args
from engine.core.errors import ConfigError
from engine.core.events import JobFailed
from engine.runtime.distributed import env_info
from engine.train.job import resume, train
from engine.train.prepare import check_config


def run(args) -> int:
    main_rank = env_info().is_main
    if args.resume:
        job = lambda ctx: resume(args.resume, ctx, device=args.device if args.device != "auto" else None,  # noqa: E731
                                 workers=args.workers, runs_dir=args.runs_dir, replan=args.replan)
    else:
        if not args.dataset:
            return report_failure(args, ConfigError("No dataset given: pass a dataset folder, "
                                                    "or --resume RUN_DIR to continue a run."))
        config = check_config(config_from_args(args))
        job = lambda ctx: train(config, ctx)  # noqa: E731
    code, final, _ = run_cli_job(args, "train", job, quiet=not main_rank)
    if isinstance(final, JobFailed):
        return code  # the error panel (and JSON error) is already out
    if not main_rank:
        return code
    result = job_result(final)
    if args.json:
        print_json(result)
    elif final.reason == "completed":
        r = result
        extra = (f"feature cache {r['feature_cache']}" if "feature_cache" in r
                 else f"recipe {r['recipe']}" if "recipe" in r else f"{r.get('images_per_s') or 0:.1f} img/s")
        if "auto" in r:  # the accuracy says where it comes from: a cross-validated estimate, or held-out photos
            board = r["auto"]
            head = (f"[bold green]done[/] accuracy {r['val_acc']:.4f}, {r['accuracy_source']}; the default "
                    f"probe's CV {board['default_probe']['cv_accuracy']:.4f}. {r['train_images']} training photos "
                    f"(the final model saw all of them), {r['val_images']} held out")
        else:
            head = (f"[bold green]done[/] val_acc {r['val_acc']:.4f} (best {r['best_val_acc']:.4f} at epoch "
                    f"{r.get('best_epoch', '?')}), {r['train_images']} train / {r['val_images']} val images")
        stdout_console().print(
            f"{head}, {r['skipped_images']} skipped, {extra}, {r['seconds']:.1f}s\n"
            f"[bold]run[/] {r['run_dir']}  (report: tlbench eval {r['run_dir']})"
            + (f"\n[bold]recipes tried[/] {len(r['auto']['leaderboard'])}, chosen by {r['auto']['repeats']} x "
               f"{r['auto']['folds']}-fold CV on the training photos: {r['run_dir']}/leaderboard.json"
               if "auto" in r else ""), highlight=False)
    else:
        where = result.get("run_dir")
        stdout_console().print(f"[yellow]stopped[/] run {where or '(not created yet)'}"
                               + (f"\ncontinue with: tlbench train --resume {where}" if where else ""),
                               highlight=False)
    return code

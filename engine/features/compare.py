"""`compare`: which backbone fits this dataset, at what speed — a cross-validated leaderboard of candidates.

For each candidate (a backbone, or a concatenation `a+b` of their features): the features of every image
through the probe's feature cache (engine.features.candidates), a k-fold cross-validated linear probe on them
(engine.evaluate.crossval: mean accuracy, its std across folds, top-5 from the out-of-fold probabilities), and the
backbone's speed on the job's device (engine.evaluate.speed, measured once and cached). A warm rerun extracts
nothing, builds no model and times nothing: it is the cross-validation alone, seconds.

One candidate failing (its weights missing offline, out of memory) is reported in its row with the error's
message; the others go on. Results are written to runs/<timestamp>-<dataset>-compare/: compare.json (after each
candidate, so a stopped comparison keeps what it finished) and tradeoff.png (accuracy against images/s, the
Pareto front marked).
"""

from __future__ import annotations

import time

import torch

from engine.core.checkpoints import versions
from engine.core.errors import ConfigError, TlbenchError, explain_unexpected
from engine.core.events import CandidateScored, JobStarted, ProgressAdvanced
from engine.core.files import atomic_write_json
from engine.core.jobs import JobContext, JobStopped
from engine.core.runs import create_run_dir, dataset_label, runs_root
from engine.data.scan import scan_dataset
from engine.data.splits import kept_samples, sample_groups
from engine.evaluate.crossval import cross_validate, stratified_folds
from engine.evaluate.plots import pareto_front, tradeoff_png
from engine.evaluate.speed import backbone_speed, device_label, speed_age
from engine.features.candidates import build_backbone, candidate_features, candidate_parts, part_img_size
from engine.models.classifier import Classifier
from engine.models.registry import feature_dim, get_spec, param_count, weights_status
from engine.models.weights import is_random
from engine.runtime.devices import describe_device
from engine.runtime.seeding import seed_everything

# worst first: a concatenation's weights are as available as its least available part
WEIGHTS_ORDER = ("missing", "download", "cached", "shipped", "file", "random")
ROW_KEYS = ("backbone", "accuracy", "accuracy_std", "top5", "images_per_s", "latency_ms", "params", "feature_dim",
            "weights", "speed_measured", "speed_device", "speed_note")


def parse_candidates(text: str | list[str]) -> list[str]:
    """"a,b+c" -> ["a", "b+c"]: names checked (a typo fails at once, not after an hour of extraction),
    duplicates dropped, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        name = "+".join(candidate_parts(item))
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError("--backbones is empty: name at least one backbone, e.g. "
                          "--backbones efficientnet_lite0,efficientnet_lite1 (`tlbench backbones` lists them).")
    return out


def weights_word(name: str, weights: str | None) -> str:
    """shipped | cached | download | missing for the registry's weights; random; file (--weights FILE)."""
    if is_random(weights):
        return "random"
    if weights is not None:
        return "file"
    return weights_status(get_spec(name)).status


def sort_rows(rows: list[dict]) -> list[dict]:
    """Best first: accuracy, then speed; failed candidates last, in their given order."""
    return sorted(rows, key=lambda r: (r.get("error") is not None, -(r.get("accuracy") or 0.0),
                                       -(r.get("images_per_s") or 0.0)))


def mark_pareto(rows: list[dict]) -> None:
    scored = [r for r in rows if r.get("accuracy") is not None and r.get("images_per_s")]
    for r, front in zip(scored, pareto_front([(r["images_per_s"], r["accuracy"]) for r in scored])):
        r["pareto"] = front
    for r in rows:
        r.setdefault("pareto", False)


def compare(
    dataset: str,
    backbones: str | list[str],
    ctx: JobContext,
    *,
    folds: int = 5,
    img_size: int | None = None,
    weights: str | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    runs_dir: str | None = None,
    exclude: str | None = "auto",
    remeasure: bool = False,
) -> dict:
    """The comparison job: {"dataset", "folds", "results" (best first), "best", "run_dir", …}. `exclude`: the
    files left out ("auto": the dataset's own exclude list, "none", or a file), as training takes it.
    `remeasure`: time every backbone again instead of reading its cached speed."""
    start = time.perf_counter()
    candidates = parse_candidates(backbones)
    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-validation needs at least 2 folds. Use --folds 5.")
    seed_everything(seed)
    kind, why = describe_device(device)
    dev = torch.device(kind)
    ctx.log(f"device: {kind} ({why})")
    info = scan_dataset(dataset, ctx=ctx)
    for bad in info.unreadable[:20]:
        ctx.log(f"skipped {bad.path}: {bad.reason}", "warning")
    # excluded files are never scored, and a duplicate group of the last audit never straddles two folds
    # (a near-copy in the training folds would flatter the candidates that memorise)
    samples, excluded = kept_samples(info, exclude)
    if excluded:
        ctx.log(f"left out {excluded} excluded image(s) (the dataset's exclude list)")
    paths = [s.path for s in samples]
    labels = torch.tensor([s.label for s in samples], dtype=torch.long, device="cpu")  # host bookkeeping
    groups = sample_groups(info.root, paths)
    # one split for every candidate: differences are theirs
    shared_folds = stratified_folds(labels, folds, seed, groups)
    # no config.json: not a training run (compare.json says what it is)
    run_dir = create_run_dir(runs_root(runs_dir), dataset_label(info.root), "compare")
    ctx.emit(JobStarted("compare", f"compare {len(candidates)} backbones on {info.name}", str(run_dir)))
    ctx.log(f"{len(paths)} images, {len(info.classes)} classes, {len(shared_folds)}-fold cross-validation; "
            f"run directory {run_dir}")
    settings = {"backbones": candidates, "folds_asked": folds, "img_size": img_size, "weights": weights,
                "seed": seed, "device": device_label(dev), "batch_size": batch_size, "versions": versions()}
    rows: list[dict] = []

    def result(done: bool) -> dict:
        ordered = sort_rows(rows)
        best = next((r["backbone"] for r in ordered if r.get("error") is None), None)
        out = {"dataset": str(info.root), "folds": len(shared_folds), "results": ordered, "best": best,
               "run_dir": str(run_dir), "images": len(paths), "excluded": excluded, "classes": len(info.classes),
               "complete": done, "plot": str(run_dir / "tradeoff.png"),
               "feature_cache": "hit" if rows and all(r.get("feature_cache") == "hit" for r in rows) else "miss",
               "seconds": round(time.perf_counter() - start - ctx.paused_seconds, 3)}
        atomic_write_json(run_dir / "compare.json", {**out, "settings": settings})
        tradeoff_png(ordered, run_dir / "tradeoff.png",
                     f"{info.name}: {len(shared_folds)}-fold accuracy vs speed on {device_label(dev)}")
        ctx.result.clear()
        ctx.result.update(out)
        return out

    for index, candidate in enumerate(candidates, 1):
        ctx.check()
        ctx.log(f"[{index}/{len(candidates)}] {candidate}")
        row = score_candidate(candidate, root=str(info.root), paths=paths, labels=labels,
                              n_classes=len(info.classes), folds=shared_folds, folds_asked=folds, groups=groups,
                              device=dev,
                              img_size=img_size, median_side=info.median_side, weights=weights, seed=seed,
                              batch_size=batch_size, workers=workers, ctx=ctx, remeasure=remeasure)
        rows.append(row)
        mark_pareto(rows)
        if row["error"]:
            ctx.log(f"{candidate}: {row['error']}", "error")
        else:
            ctx.log(f"{candidate}: accuracy {row['accuracy']:.4f} ± {row['accuracy_std']:.4f}, top-5 "
                    f"{row['top5']:.4f}, {row['images_per_s']:.1f} images/s, {row['latency_ms']:.1f} ms/image "
                    f"(features {row['feature_cache']}, speed {row['speed_cache']})")
        ctx.emit(CandidateScored(index, len(candidates), dict(row)))
        ctx.progress(ProgressAdvanced("compare", index, len(candidates), "candidates"), force=True)
        result(done=False)
    out = result(done=True)
    if out["best"]:
        ctx.log(f"best: {out['best']} · {run_dir / 'compare.json'} · {run_dir / 'tradeoff.png'}")
    return out


def score_candidate(candidate: str, *, root: str, paths: list[str], labels: torch.Tensor, n_classes: int,
                    folds: list, folds_asked: int, groups: list[int], device: torch.device, img_size: int | None,
                    median_side: int | None, weights: str | None, seed: int, batch_size: int,
                    workers: int | None, ctx: JobContext, remeasure: bool = False) -> dict:
    """One leaderboard row. Any failure but a stop becomes the row's "error" (a message that says what to do)."""
    parts = candidate_parts(candidate)
    row: dict = {"backbone": candidate, **dict.fromkeys(ROW_KEYS[1:]), "error": None}
    models: dict[str, Classifier] = {}  # each part built at most once, for its features and its timing
    try:
        row["params"] = sum(param_count(p) for p in parts)
        row["feature_dim"] = sum(feature_dim(p) for p in parts)
        row["weights"] = min((weights_word(p, weights) for p in parts), key=WEIGHTS_ORDER.index)
        sizes = {p: part_img_size(p, img_size, median_side) for p in parts}
        row["img_size"] = sizes[parts[0]] if len(set(sizes.values())) == 1 else sizes
        feats, errors, stats = candidate_features(candidate, root, paths, device, img_size=img_size,
                                                  median_side=median_side, weights=weights, seed=seed,
                                                  batch_size=batch_size, workers=workers, ctx=ctx, models=models)
        row["feature_cache"] = stats["feature_cache"]
        x, y, cv_folds = feats, labels, folds
        if errors:  # files that broke since the scan: this candidate is scored on the others
            ctx.log(f"{candidate}: {len(errors)} images could not be read; scored without them", "warning")
            keep = torch.tensor([i not in errors for i in range(len(paths))], device="cpu")
            x, y = feats[keep], labels[keep]
            cv_folds = stratified_folds(y, folds_asked, seed, [g for g, k in zip(groups, keep.tolist()) if k])
        cv = cross_validate(x, y, n_classes, cv_folds, check=ctx.check)
        row.update(accuracy=round(cv.accuracy, 6), accuracy_std=round(cv.accuracy_std, 6), top5=round(cv.top5, 6),
                   fold_accuracies=cv.fold_accuracies)
        latency, seconds_per_image, hits, speeds = 0.0, 0.0, [], []
        for p in parts:  # a concatenation runs its parts one after the other
            speed, hit = backbone_speed(
                p, sizes[p], device, lambda p=p: models[p] if p in models else build_backbone(p, weights, seed, ctx),
                batch_size, ctx, remeasure)
            latency += speed["latency_ms"]
            seconds_per_image += 1.0 / speed["images_per_s"]
            hits.append(hit)
            speeds.append(speed)
        # the oldest part's date and the worst part's age: a concatenation is as trustworthy as its parts
        notes = [speed_age(s) for s in speeds]
        row.update(images_per_s=round(1.0 / seconds_per_image, 2), latency_ms=round(latency, 3),
                   speed_cache="hit" if all(hits) else "miss",
                   speed_measured=min(str(s.get("measured") or "") for s in speeds) or None,
                   speed_device=speeds[0].get("device") or device_label(device),
                   speed_note=next((n for n in notes if n == "busy"), None) or next((n for n in notes if n), ""))
    except JobStopped:
        raise
    except TlbenchError as err:
        row["error"] = err.message
    except Exception as err:  # noqa: BLE001 - one candidate's failure (out of memory, a bug) is its row's
        title, message = explain_unexpected(err)
        row["error"] = f"{title}: {message}"
    finally:
        models.clear()  # free the networks before the next candidate's
    return row

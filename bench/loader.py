"""The decoded-image cache against the plain loader, then a head-mode fine-tune with and without it.

    .venv/bin/python bench/loader.py [DATASET ...] [--size 128] [--workers 1] [--epochs 3] [--ft-size 64]

1. Loader alone, no model: decode + resize + random crop + flip to uint8 batches of 32 at --size px.
   plain: torchvision ImageFolder + PIL (RandomResizedCrop(size, scale=(0.35, 1)), RandomHorizontalFlip,
   PILToTensor) — the lesson's loader; cached: engine.data.decoded.DecodedFiles with the same augmentation on
   the stored pixels (built once before, its build time reported apart). Same DataLoader settings, same files.
2. `tlbench train --mode head --img-size 64` for --epochs epochs, with the cache (the default) and with
   --no-decoded-cache: images/s per epoch from metrics.jsonl, and the store's build time from the log.
Writes bench/results/loader_<cpu|cuda>.json (or --out).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# ../shared/data beside the checkout (or beside the worktrees' folder)
SHARED = next((p / "shared" / "data" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
              ROOT.parent / "shared" / "data")

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from engine.data.decoded import DecodedFiles, build_store  # noqa: E402
from engine.models.registry import get_spec  # noqa: E402
from engine.train.augment import tensor_train_transform  # noqa: E402


def images_per_s(loader, passes=2):
    """Best pass over the loader, images/s (the first batch's worker start-up included in each pass)."""
    best = 0.0
    for _ in range(passes):
        t, n = time.perf_counter(), 0
        for batch in loader:
            n += len(batch[0])
        best = max(best, n / (time.perf_counter() - t))
    return best


def loader_rows(root, size, workers):
    torch.manual_seed(0)
    plain_ds = datasets.ImageFolder(root, transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True), transforms.RandomHorizontalFlip(),
        transforms.PILToTensor()]))
    kw = dict(batch_size=32, shuffle=True, num_workers=workers, persistent_workers=False)
    plain = images_per_s(DataLoader(plain_ds, **kw))
    prep = get_spec("efficientnet_lite0").preprocessing(size)
    paths = [p for p, _ in plain_ds.samples]
    t = time.perf_counter()
    folder = build_store(paths, prep, workers)
    build_s = time.perf_counter() - t
    cached_ds = DecodedFiles(folder, prep, tensor_train_transform("light", prep))
    cached = images_per_s(DataLoader(cached_ds, **kw))
    store_mb = (folder / "pixels.u8").stat().st_size / 1e6
    return {"dataset": Path(root).name, "images": len(paths), "size": size, "workers": workers,
            "plain_images_per_s": round(plain, 1), "cached_images_per_s": round(cached, 1),
            "ratio": round(cached / plain, 2), "build_s": round(build_s, 2),
            "build_images_per_s": round(len(paths) / build_s, 1), "store_mb": round(store_mb, 1),
            "working_px": prep.resize_size}


def finetune(root, size, epochs, cache, tmp):
    env = {**os.environ, "TLBENCH_CACHE": str(tmp / "cache"), "TLBENCH_RUNS": str(tmp / "runs")}
    cmd = [sys.executable, "-m", "tui.main", "train", root, "--mode", "head", "--img-size", str(size),
           "--epochs", str(epochs), "--precision", "fp32", "--json"] + ([] if cache else ["--no-decoded-cache"])
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    result = json.loads(out.stdout)
    metrics = [json.loads(line) for line in (Path(result["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    return {"decoded_cache": cache, "wall_s": round(wall, 1),
            "epoch_images_per_s": [round(m["images_per_s"], 1) for m in metrics],
            "epoch_seconds": [round(m["seconds"], 2) for m in metrics], "val_acc": metrics[-1]["val_acc"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", nargs="*", default=[str(SHARED / "cats-dogs-dev")])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--ft-size", type=int, default=64)
    ap.add_argument("--skip-finetune", action="store_true")
    ap.add_argument("--out", default=None, help="result file (default bench/results/loader_<cpu|cuda>.json)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tlbench-loader-"))
    os.environ["TLBENCH_CACHE"] = str(tmp / "loader-cache")
    rows = [loader_rows(root, args.size, args.workers) for root in args.dataset]
    for r in rows:
        print(json.dumps(r), flush=True)
    ft = []
    if not args.skip_finetune:
        for cache in (False, True):
            ft.append(finetune(args.dataset[0], args.ft_size, args.epochs, cache, tmp / f"ft{int(cache)}"))
            print(json.dumps(ft[-1]), flush=True)
    summary = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "loader": rows, "finetune": ft}
    if len(ft) == 2:
        plain_first, cached = ft[0]["epoch_images_per_s"][0], ft[1]["epoch_images_per_s"]
        summary["finetune_cached_later_over_plain_epoch1"] = round(min(cached[1:]) / plain_first, 2)
        summary["finetune_cached_later_over_cached_epoch1"] = round(min(cached[1:]) / cached[0], 2)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # where the fine-tune ran (--device auto)
    summary["device"] = device
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"loader_{device}.json"
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("loader", "finetune")}))


if __name__ == "__main__":
    main()

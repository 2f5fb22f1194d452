"""Probe extraction per precision: fp32, bf16 and what `--precision auto` chose, same images, same process.

    .venv/bin/python bench/precision.py [--dataset DIR ...] [--backbone efficientnet_lite0] [--img-size 224]
                                        [--device cpu|cuda] [--bf16-limit 64]

For each dataset: images/s of engine.features.cache.extract at each precision (BatchNorm folded,
channels_last, the job's own loader), and the accuracy of a linear head (the probe's: Adam on the features,
the same seed) per precision. `auto` runs with a fresh cache, so its measurement is part of the run and its
choice is reported with the rates it measured. On a CPU where bf16 is emulated (AVX2) bf16 runs on the first
--bf16-limit images only (it is 10x+ slower) and its accuracy is not reported. Writes
bench/results/precision_<device>.json with the CPU's name and flags.
"""

import argparse
import json
import os
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
import torch.nn.functional as F  # noqa: E402

from engine.data.scan import scan_dataset, split_dataset  # noqa: E402
from engine.features.cache import extract  # noqa: E402
from engine.models.build import build_classifier  # noqa: E402
from engine.models.registry import get_spec  # noqa: E402
from engine.runtime import precision_auto as pa  # noqa: E402


def head_accuracy(xtr, ytr, xva, yva, classes, epochs=60, seed=0):
    """The probe's head: a linear layer, Adam, full batch; validation accuracy."""
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(xtr.shape[1], classes)
    torch.nn.init.normal_(head.weight, std=0.01, generator=g)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(head(xtr), ytr).backward()
        opt.step()
    with torch.no_grad():
        return float((head(xva).argmax(1) == yva).float().mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", nargs="*", default=[str(SHARED / "cats-dogs-dev"),
                                                     str(ROOT / "data" / "demo" / "digits")])
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16-limit", type=int, default=64)
    ap.add_argument("--max-images", type=int, default=600)
    ap.add_argument("--out", default=None, help="result file (default bench/results/<name>_<device>.json)")
    args = ap.parse_args()
    device = torch.device(args.device)
    os.environ["TLBENCH_CACHE"] = tempfile.mkdtemp(prefix="tlbench-precision-")
    profile = pa.machine_profile(device)
    key = profile.key(args.backbone)
    native, why = pa.candidates(profile)
    spec = get_spec(args.backbone)
    prep = spec.preprocessing(args.img_size)
    rows = []
    for root in args.dataset:
        info = scan_dataset(root)
        train, val = split_dataset(info, 0.2, 0)
        train, val = train[: args.max_images * 4 // 5], val[: args.max_images // 5]
        samples = train + val
        paths = [s.path for s in samples]
        labels = torch.tensor([s.label for s in samples])
        model, _ = build_classifier(args.backbone, len(info.classes))
        row = {"dataset": Path(root).name, "images": len(paths)}
        for precision in ("fp32", "bf16", "auto"):
            emulated = precision == "bf16" and "bf16" not in native and device.type == "cpu"
            some = paths[: args.bf16_limit] if emulated else paths
            t = time.perf_counter()
            feats, errors, rate = extract(model, some, prep, device, batch_size=32, precision=precision,
                                          backbone=args.backbone)
            row[f"{precision}_images_per_s"] = round(rate, 2)
            row[f"{precision}_seconds"] = round(time.perf_counter() - t, 2)
            if precision == "auto":
                chosen = pa.resolve_auto(device, args.backbone)
                row["auto_choice"], row["auto_measured"] = chosen.choice, chosen.rates
            if len(some) == len(paths):
                n = len(train)
                feats = feats.clone()  # out of inference mode: the head trains on them
                row[f"{precision}_val_acc"] = head_accuracy(feats[:n], labels[:n], feats[n:], labels[n:],
                                                            len(info.classes))
        best = max(row["fp32_images_per_s"], row["bf16_images_per_s"])
        row["auto_over_best"] = round(row["auto_images_per_s"] / best, 3)
        row["auto_over_fp32"] = round(row["auto_images_per_s"] / row["fp32_images_per_s"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    name, flags = profile.device, list(profile.cpu_flags)
    out = {"device": key["device"], "device_type": device.type, "cpu": name, "cpu_flags": flags,
           "cpu_capability": key["cpu_capability"], "torch": torch.__version__, "cpus": os.cpu_count(),
           "threads": torch.get_num_threads(), "backbone": args.backbone, "img_size": args.img_size,
           "candidates": native, "why": why, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    dest = Path(args.out) if args.out else ROOT / "bench" / "results" / f"precision_{device.type}.json"
    dest.write_text(json.dumps(out, indent=2))
    print("| dataset | fp32 img/s | bf16 img/s | auto img/s (chose) | auto/best | acc fp32 / bf16 / auto |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        acc = " / ".join(f"{r.get(f'{p}_val_acc', float('nan')):.3f}" for p in ("fp32", "bf16", "auto"))
        print(f"| {r['dataset']} | {r['fp32_images_per_s']} | {r['bf16_images_per_s']} | "
              f"{r['auto_images_per_s']} ({r['auto_choice']}) | {r['auto_over_best']} | {acc} |")
    print(f"{name} ({key['cpu_capability']}; {' '.join(flags)}), torch {torch.__version__} -> {dest}")


if __name__ == "__main__":
    main()

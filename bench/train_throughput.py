"""Training throughput (images/s of forward + backward + optimizer step): tlbench's fine-tuning loop against a
plain PyTorch loop, the same model, data, batch size and DataLoader workers, in the same process.

    .venv/bin/python bench/train_throughput.py [DATASET] [--img-size 96] [--repeat 2] [--epochs 2]

The plain loop is the one a user writes: DataLoader(shuffle=True), model.train(), cross-entropy, AdamW.
tlbench runs `train --mode full --freeze-epochs 0 --augment none --train-bn` and reports images/s per epoch (its
training phase only, like the plain loop). The first epoch of each side warms up and is not counted; sides
alternate, and the best epoch of each side is kept. Prints a table; writes bench/results/train_throughput.json.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def plain_epochs(paths, labels, prep, args, device):
    import torch
    from torch.utils.data import DataLoader

    from engine.backbones import build_classifier
    from engine.preprocess import ImageFiles

    torch.manual_seed(0)
    model, _ = build_classifier(args.backbone, int(labels.max()) + 1)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for _ in range(args.epochs):
        loader = DataLoader(ImageFiles(paths, prep), batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers)
        t0, seen = time.perf_counter(), 0
        for x, idx, _err in loader:
            x, y = x.to(device).float().div_(255), labels[idx].to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
        rates.append(seen / (time.perf_counter() - t0))
    return rates


def tlbench_epochs(args, runs):
    from engine.config import TrainConfig
    from engine.events import EpochEnded
    from engine.jobs import run_job
    from engine.training import train

    # train_bn: BatchNorm in train mode, as in the plain loop, so both sides do the same computation
    cfg = TrainConfig(dataset=args.dataset, mode="full", freeze_epochs=0, epochs=args.epochs, augment="none", train_bn=True,
                      img_size=args.img_size, batch_size=args.batch_size, workers=args.workers, lr=1e-4,
                      runs_dir=str(runs), device=args.device)
    rates = []
    final = run_job("train", lambda ctx: train(cfg, ctx),
                    lambda e: rates.append(e.metrics["images_per_s"]) if isinstance(e, EpochEnded) else None)
    if type(final).__name__ != "JobFinished":
        sys.exit(f"tlbench failed: {final}")
    return rates


def main():
    ap = argparse.ArgumentParser()
    default = ROOT.parent / "shared" / "data" / "cats-dogs-dev"
    ap.add_argument("dataset", nargs="?", default=str(default if default.exists() else ROOT / "data/demo/digits"))
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--img-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from engine.backbones import get_spec
    from engine.datasets import scan_dataset, split_dataset

    os.environ.setdefault("TLBENCH_CACHE", tempfile.mkdtemp(prefix="tlbench-cache-"))
    info = scan_dataset(args.dataset)
    train, _ = split_dataset(info, 0.2, 0)
    paths = [s.path for s in train]
    labels = torch.tensor([s.label for s in train])
    prep = get_spec(args.backbone).preprocessing(args.img_size)
    device = torch.device(args.device)
    runs = Path(tempfile.mkdtemp(prefix="tlbench-bench-runs-"))
    plain, ours = [], []
    for rep in range(args.repeat):
        plain += plain_epochs(paths, labels, prep, args, device)[1:]
        ours += tlbench_epochs(args, runs)[1:]
        print(f"repeat {rep + 1}: plain {plain[-1]:.1f} img/s, tlbench {ours[-1]:.1f} img/s", file=sys.stderr)
    summary = {
        "dataset": str(info.root), "train_images": len(paths), "backbone": args.backbone, "img_size": args.img_size,
        "batch_size": args.batch_size, "workers": args.workers, "device": args.device,
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
        "plain_images_per_s": round(max(plain), 2), "tlbench_images_per_s": round(max(ours), 2),
        "ratio": round(max(ours) / max(plain), 3), "plain_epochs": plain, "tlbench_epochs": ours,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "train_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("| loop | images/s (forward + backward + step) |\n|---|---|")
    print(f"| plain PyTorch | {summary['plain_images_per_s']:.1f} |")
    print(f"| tlbench `train --mode full` | {summary['tlbench_images_per_s']:.1f} |")
    print(f"\nratio tlbench / plain: {summary['ratio']:.3f} ({len(paths)} images at {args.img_size} px, "
          f"{args.backbone}, batch {args.batch_size}, {args.workers} worker(s), {args.device})")


if __name__ == "__main__":
    main()

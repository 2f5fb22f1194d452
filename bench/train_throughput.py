"""Training throughput (images/s of forward + backward + optimizer step): tlbench's fine-tuning loop against a
plain PyTorch loop, the same model, data, batch size, precision, memory format and DataLoader workers, in
the same process.

    .venv/bin/python bench/train_throughput.py [DATASET] [--img-size 96] [--repeat 2] [--epochs 2]
        [--backbone resnet50 --weights random] [--precision auto|fp32|bf16|fp16] [--channels-last on|off|auto]
        [--device cuda] [--out FILE]
    .venv/bin/python bench/train_throughput.py --compare-memory-formats 6 --out FILE   # channels_last or not

The plain loop is the one a user writes: DataLoader(shuffle=True), model.train(), cross-entropy, AdamW, and
autocast / channels_last / a GradScaler (fp16) when asked, reading nothing back from the GPU. tlbench runs
`train --mode full --freeze-epochs 0 --augment none --train-bn` with the same --precision and
--channels-last, and reports images/s per epoch (its training phase only, like the plain loop). The first
epoch of each side warms up and is not counted; sides alternate, and the best epoch of each side is kept.
A third number, the plain loop on one batch kept on the device (no DataLoader), says whether the data
pipeline is the limit. Prints a table; writes bench/results/train_throughput.json (or --out).
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


def plain_model(args, n_classes, device):
    import torch

    from engine.models.build import build_classifier
    from engine.runtime.precision import autocast_dtype, needs_grad_scaler, use_channels_last

    torch.manual_seed(0)
    model, _ = build_classifier(args.backbone, n_classes, args.weights)
    model.to(device).train()
    channels_last = use_channels_last(device, args.channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, args.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, dtype))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4), dtype, scaler, channels_last


def plain_step(model, opt, dtype, scaler, channels_last, x, y):
    import torch

    x = x.float().div_(255)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epochs(paths, labels, prep, args, device):
    from torch.utils.data import DataLoader

    from engine.data.loaders import ImageFiles

    model, opt, dtype, scaler, channels_last = plain_model(args, int(labels.max()) + 1, device)
    rates = []
    for _ in range(args.epochs):
        loader = DataLoader(ImageFiles(paths, prep), batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, pin_memory=device.type == "cuda")
        sync(device)
        t0, seen = time.perf_counter(), 0
        for x, idx, _err in loader:
            x, y = x.to(device, non_blocking=True), labels[idx].to(device, non_blocking=True)
            plain_step(model, opt, dtype, scaler, channels_last, x, y)
            seen += len(y)
        sync(device)
        rates.append(seen / (time.perf_counter() - t0))
    return rates


def plain_in_memory(paths, labels, prep, args, device, steps):
    """The plain loop's steps on one batch already on the device: the model's own speed, no data pipeline."""
    from engine.data.loaders import ImageFiles

    model, opt, dtype, scaler, channels_last = plain_model(args, int(labels.max()) + 1, device)
    files = ImageFiles(paths[:args.batch_size], prep)
    import torch

    x = torch.stack([files[i][0] for i in range(len(files))]).to(device)
    y = labels[:len(files)].to(device)
    rates = []
    for _ in range(2):  # the first round warms up
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            plain_step(model, opt, dtype, scaler, channels_last, x, y)
        sync(device)
        rates.append(steps * len(y) / (time.perf_counter() - t0))
    return rates[-1]


def compare_memory_formats(paths, labels, prep, args, device, trials):
    """Contiguous against channels_last, the plain step on one batch on the device, alternating trial by trial
    and keeping each format's best: on a shared machine the quietest moments decide, not the busiest."""
    import argparse as _argparse

    import torch

    from engine.data.loaders import ImageFiles

    files = ImageFiles(paths[:args.batch_size], prep)
    x = torch.stack([files[i][0] for i in range(len(files))]).to(device)
    y = labels[:len(files)].to(device)
    sides = {}
    for fmt in ("off", "on"):
        sides[fmt] = plain_model(_argparse.Namespace(**{**vars(args), "channels_last": fmt}), int(labels.max()) + 1,
                                 device)
    best = {"off": float("inf"), "on": float("inf")}
    for trial in range(trials + 1):  # trial 0 warms both up
        for fmt, (model, opt, dtype, scaler, channels_last) in sides.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(2):
                plain_step(model, opt, dtype, scaler, channels_last, x, y)
            sync(device)
            if trial:
                best[fmt] = min(best[fmt], (time.perf_counter() - t0) / 2)
    return {"contiguous_images_per_s": round(len(y) / best["off"], 2),
            "channels_last_images_per_s": round(len(y) / best["on"], 2),
            "channels_last_speedup": round(best["off"] / best["on"], 3), "trials": trials}


def tlbench_epochs(args, runs):
    from engine.core.events import EpochEnded
    from engine.core.jobs import run_job
    from engine.train.config import TrainConfig
    from engine.train.job import train

    # train_bn: BatchNorm in train mode, as in the plain loop, so both sides do the same computation
    cfg = TrainConfig(dataset=args.dataset, mode="full", freeze_epochs=0, epochs=args.epochs, augment="none",
                      train_bn=True, img_size=args.img_size, batch_size=args.batch_size, workers=args.workers,
                      lr=1e-4, runs_dir=str(runs), device=args.device, backbone=args.backbone, weights=args.weights,
                      precision=args.precision, channels_last=args.channels_last)
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
    ap.add_argument("--weights", default=None, help="'random' for a torchvision backbone with no weights here")
    ap.add_argument("--img-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", help="auto | fp32 | bf16 | fp16 (both sides)")
    ap.add_argument("--channels-last", default="off", help="on | off | auto (both sides)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_throughput.json"))
    ap.add_argument("--compare-memory-formats", type=int, default=0, metavar="TRIALS",
                    help="only compare contiguous and channels_last (plain step, one batch in memory, best of "
                    "TRIALS alternating trials)")
    args = ap.parse_args()

    import torch

    from engine.data.scan import scan_dataset, split_dataset
    from engine.models.registry import get_spec
    from engine.runtime.precision import autocast_dtype, precision_name, use_channels_last

    os.environ.setdefault("TLBENCH_CACHE", tempfile.mkdtemp(prefix="tlbench-cache-"))
    info = scan_dataset(args.dataset)
    train, _ = split_dataset(info, 0.2, 0)
    paths = [s.path for s in train]
    labels = torch.tensor([s.label for s in train])
    prep = get_spec(args.backbone).preprocessing(args.img_size)
    device = torch.device(args.device)
    if args.compare_memory_formats:
        result = {"backbone": args.backbone, "weights": args.weights, "img_size": args.img_size,
                  "batch_size": args.batch_size, "device": args.device,
                  "precision": precision_name(autocast_dtype(device, args.precision)), "cpus": os.cpu_count(),
                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                  "date": time.strftime("%Y-%m-%d"),
                  **compare_memory_formats(paths, labels, prep, args, device, args.compare_memory_formats)}
        out = Path(args.out)
        results = json.loads(out.read_text()) if out.exists() else []
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([*results, result], indent=2) + "\n")  # one entry per backbone measured
        print(json.dumps(result))
        return
    runs = Path(tempfile.mkdtemp(prefix="tlbench-bench-runs-"))
    plain, ours = [], []
    for rep in range(args.repeat):
        plain += plain_epochs(paths, labels, prep, args, device)[1:]
        ours += tlbench_epochs(args, runs)[1:]
        print(f"repeat {rep + 1}: plain {plain[-1]:.1f} img/s, tlbench {ours[-1]:.1f} img/s", file=sys.stderr)
    in_memory = plain_in_memory(paths, labels, prep, args, device, max(4, len(paths) // args.batch_size))
    summary = {
        "dataset": str(info.root), "train_images": len(paths), "backbone": args.backbone, "weights": args.weights,
        "img_size": args.img_size, "batch_size": args.batch_size, "workers": args.workers, "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "precision": precision_name(autocast_dtype(device, args.precision)),
        "channels_last": use_channels_last(device, args.channels_last),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
        "plain_images_per_s": round(max(plain), 2), "tlbench_images_per_s": round(max(ours), 2),
        "ratio": round(max(ours) / max(plain), 3), "plain_epochs": plain, "tlbench_epochs": ours,
        "plain_in_memory_images_per_s": round(in_memory, 2),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print("| loop | images/s (forward + backward + step) |\n|---|---|")
    print(f"| plain PyTorch | {summary['plain_images_per_s']:.1f} |")
    print(f"| tlbench `train --mode full` | {summary['tlbench_images_per_s']:.1f} |")
    print(f"| plain PyTorch, one batch on the device (no data loading) | {in_memory:.1f} |")
    print(f"\nratio tlbench / plain: {summary['ratio']:.3f} ({len(paths)} images at {args.img_size} px, "
          f"{args.backbone}, batch {args.batch_size}, {args.workers} worker(s), {args.device}, "
          f"{summary['precision']}, channels_last {summary['channels_last']})")


if __name__ == "__main__":
    main()

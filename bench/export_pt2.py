"""pt2 (torch.export) against TorchScript: predictions, load time and per-image latency, in one run.

    .venv/bin/python bench/export_pt2.py [DATASET] [--images 16]

Trains a probe (efficientnet_lite0, 224 px) on DATASET (default ../shared/data/cats-dogs-dev) in a temporary
runs folder, exports it to pt2 and to TorchScript, then on --images real JPEGs of the dataset, each decoded
in full and given to the export as a user would: the largest probability difference to `tlbench predict`
(engine.serve.predict.predict_paths), the load time (best of 3, a fresh load each) and the latency per image
(batch of one; median over the images after one warm-up call). Writes bench/results/export_pt2.json.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# ../shared/data beside the checkout (or beside the worktrees' folder)
SHARED = next((p / "shared" / "data" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
              ROOT.parent / "shared" / "data")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.core.jobs import run_job  # noqa: E402
from engine.data.images import load_rgb  # noqa: E402
from engine.models.loading import load_run_model  # noqa: E402
from engine.serve.export import export_run, load_exported  # noqa: E402
from engine.serve.predict import predict_paths  # noqa: E402
from engine.train.config import TrainConfig  # noqa: E402
from engine.train.job import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", nargs="?", default=str(SHARED / "cats-dogs-dev"))
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "export_pt2.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tlbench-export-"))
    os.environ.update(TLBENCH_CACHE=str(tmp / "cache"), TLBENCH_RUNS=str(tmp / "runs"))
    final = run_job("train", lambda ctx: train(TrainConfig(dataset=args.dataset, mode="probe", img_size=224), ctx))
    if not hasattr(final, "result"):
        sys.exit(f"the probe failed: {final}")
    run_dir = final.result["run_dir"]
    model, record = load_run_model(run_dir)
    jpegs = sorted(str(p) for p in Path(args.dataset).rglob("*.jp*g"))[:: 7][: args.images]
    rows = predict_paths(model, record, jpegs, top_k=len(record.classes), device="cpu")
    want = torch.zeros(len(jpegs), len(record.classes))
    for i, row in enumerate(rows):
        for p in row["predictions"]:
            want[i, p["index"]] = p["prob"]
    pixels = [torch.from_numpy(np.asarray(load_rgb(p)).copy()).permute(2, 0, 1)[None] for p in jpegs]
    out = {"dataset": args.dataset, "images": len(jpegs), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "date": time.strftime("%Y-%m-%d")}
    for fmt in ("pt2", "torchscript"):
        t = time.perf_counter()
        result = export_run(run_dir, fmt)
        export_s = time.perf_counter() - t
        loads = []
        for _ in range(3):
            t = time.perf_counter()
            run, _ = load_exported(result["path"], fmt)
            loads.append(time.perf_counter() - t)
        with torch.inference_mode():
            run(pixels[0])  # warm-up
            lat, got = [], []
            for x in pixels:
                t = time.perf_counter()
                got.append(run(x))
                lat.append(time.perf_counter() - t)
        diff = float((torch.cat(got) - want).abs().max())
        out[fmt] = {"export_s": round(export_s, 2), "load_s": round(min(loads), 3), "bytes": result["bytes"],
                    "latency_ms_median": round(1e3 * statistics.median(lat), 1),
                    "max_abs_diff_vs_predict": diff, "self_check_max_abs_diff": result["max_abs_diff"]}
        print(fmt, json.dumps(out[fmt]), flush=True)
    out["pt2_load_over_torchscript"] = round(out["pt2"]["load_s"] / out["torchscript"]["load_s"], 2)
    out["pt2_latency_over_torchscript"] = round(out["pt2"]["latency_ms_median"] /
                                               out["torchscript"]["latency_ms_median"], 2)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k not in ("pt2", "torchscript")}))


if __name__ == "__main__":
    main()

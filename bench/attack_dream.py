"""Attack and dream benchmark: seconds per step of tlbench's jobs vs a plain PyTorch loop, same session.

    .venv/bin/python bench/attack_dream.py [--repeat 3] [--pgd-steps 20] [--dream-steps 30] [--no-acceptance]

PGD: targeted L-inf PGD on skimage's chelsea with EfficientNet-Lite0 at 224 px — `attack_job` against the
textbook loop (model.eval(), autograd.grad, sign step, projection). Dream: the robust recipe at 224 px —
`dream_job` against the same recipe written as a plain loop (Fourier image, colour decorrelation, pad /
jitter / scale / rotate, Adam, class logit). Per-step time excludes model loading and the first (warm-up)
step; the sides alternate so background load hits both. Ratio = plain s/step / tlbench s/step (>= 0.95:
tlbench is no slower than 95% of plain speed).

The acceptance run follows: lite0 dreams of "tabby cat", 300 steps at 224 px, both recipes, judged by
EfficientNet-Lite2. Prints a Markdown table and writes bench/results/attack_dream.json.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TABBY, GOLDEN = 281, 207


def chelsea_tensor(size: int = 224) -> tuple[torch.Tensor, str]:
    from PIL import Image
    from skimage import data

    path = Path(os.environ.get("TMPDIR", "/tmp")) / "tlbench-bench-chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    from engine.data.loaders import load_for_model
    from engine.models.registry import get_spec

    x = load_for_model(path, get_spec("efficientnet_lite0").preprocessing(size)).unsqueeze(0).float() / 255
    return x, str(path)


def plain_model():
    """What a plain PyTorch user has: the classifier in eval mode, nothing else done to it."""
    from engine.models.build import build_classifier

    model, _ = build_classifier("efficientnet_lite0", None)
    return model.eval()


# ------------------------------------------------------------------------------------ plain loops


def plain_pgd(model, x, target, eps, alpha, steps) -> list[float]:
    """Targeted L-inf PGD, the textbook loop. Returns the time at the end of each step."""
    stamps = []
    labels = torch.tensor([target])
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), labels)
        grad = torch.autograd.grad(loss, adv)[0]
        adv = adv.detach() - alpha * grad.sign()
        adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1)
        stamps.append(time.perf_counter())
    return stamps


COLOR = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR = torch.tensor(COLOR / np.max(np.linalg.norm(COLOR, axis=0)))


def plain_dream(model, target, size, steps, seed=0) -> list[float]:
    """The robust recipe written out as a plain loop (Lucent's fft_image + standard transforms)."""
    g = torch.Generator().manual_seed(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[: size // 2 + 1]
    freqs = np.sqrt(fx * fx + fy * fy)
    spectrum = (torch.randn(1, 3, *freqs.shape, 2, generator=g) * 0.01).requires_grad_(True)
    scale = torch.tensor(1.0 / np.maximum(freqs, 1.0 / size), dtype=torch.float32)[None, None, ..., None]
    opt = torch.optim.Adam([spectrum], lr=0.05)
    scales = [1 + (i - 5) / 50.0 for i in range(11)]
    angles = list(range(-10, 11)) + 5 * [0]

    def rint(hi):
        return int(torch.randint(0, hi + 1, (1,), generator=g))

    stamps = []
    for _ in range(steps):
        img = torch.fft.irfftn(torch.view_as_complex(scale * spectrum), s=(size, size), norm="ortho") / 4.0
        img = torch.sigmoid(torch.einsum("nchw,dc->ndhw", img, COLOR))
        t = F.pad(img, (12, 12, 12, 12), value=0.5)
        dx, dy = rint(8), rint(8)
        t = t[..., dy:dy + t.shape[-2] - 8, dx:dx + t.shape[-1] - 8]
        s, a = scales[rint(10)], math.radians(angles[rint(len(angles) - 1)])
        if s != 1 or a != 0:
            theta = torch.tensor([[math.cos(a) / s, -math.sin(a) / s, 0.0], [math.sin(a) / s, math.cos(a) / s, 0.0]])
            grid = F.affine_grid(theta[None], list(t.shape), align_corners=False)
            t = F.grid_sample(t, grid, padding_mode="border", align_corners=False)
        dx, dy = rint(4), rint(4)
        t = t[..., dy:dy + t.shape[-2] - 4, dx:dx + t.shape[-1] - 4]
        logits = model(t)
        loss = -logits[0, target]
        opt.zero_grad()
        loss.backward()
        opt.step()
        float(logits.detach().softmax(1)[0, target])  # tlbench reports this every step: same work here
        stamps.append(time.perf_counter())
    return stamps


# ------------------------------------------------------------------------------------ tlbench side


def step_stamps(run) -> tuple[list[float], dict]:
    from engine.core.events import JobFailed, StepEnded
    from engine.core.jobs import run_job

    stamps = []

    def sink(e):
        if isinstance(e, StepEnded):
            stamps.append(time.perf_counter())

    final = run_job("bench", run, sink)
    if isinstance(final, JobFailed):
        raise final.error
    return stamps, final.result


def per_step(stamps: list[float]) -> float:
    """Seconds per step after the first (warm-up) step."""
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pgd-steps", type=int, default=20)
    ap.add_argument("--dream-steps", type=int, default=30)
    ap.add_argument("--no-acceptance", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TLBENCH_RUNS", str(Path(os.environ.get("TMPDIR", "/tmp")) / "tlbench-bench-runs"))

    from engine.adversarial.attack_job import AttackParams, attack_job
    from engine.adversarial.dream_job import dream_job
    from engine.adversarial.dreams import DreamParams

    torch.manual_seed(0)
    x, chelsea = chelsea_tensor()
    model = plain_model()
    for p in model.parameters():
        p.requires_grad_(False)  # a careful plain user does this too; weight gradients would be wasted
    eps, alpha = 4 / 255, 1 / 255
    out = Path(os.environ["TLBENCH_RUNS"])
    rows = []
    for rep in range(args.repeat):
        s = plain_pgd(model, x, GOLDEN, eps, alpha, args.pgd_steps)
        rows.append({"what": "pgd", "side": "plain", "rep": rep, "s_per_step": per_step(s)})
        params = AttackParams(images=[chelsea], backbone="efficientnet_lite0", eps=eps, step_size=alpha,
                              steps=args.pgd_steps, target=str(GOLDEN), out=str(out / "bench-attack"), device="cpu")
        s, res = step_stamps(lambda ctx, p=params: attack_job(p, ctx))
        rows.append({"what": "pgd", "side": "tlbench", "rep": rep, "s_per_step": per_step(s),
                     "target_prob": res["results"][0]["target_prob"]})
        s = plain_dream(model, TABBY, 224, args.dream_steps)
        rows.append({"what": "dream", "side": "plain", "rep": rep, "s_per_step": per_step(s)})
        params = DreamParams(target=str(TABBY), backbone="efficientnet_lite0", steps=args.dream_steps,
                             img_size=224, preview_every=10, out=str(out / "bench-dream"), device="cpu")
        s, res = step_stamps(lambda ctx, p=params: dream_job(p, ctx))
        rows.append({"what": "dream", "side": "tlbench", "rep": rep, "s_per_step": per_step(s)})
        print(f"rep {rep}: " + ", ".join(f"{r['what']} {r['side']} {r['s_per_step']:.4f}" for r in rows[-4:]),
              file=sys.stderr, flush=True)

    def median(what, side):
        return statistics.median(r["s_per_step"] for r in rows if r["what"] == what and r["side"] == side)

    summary = {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "pgd": {"steps": args.pgd_steps, "plain_s_per_step": median("pgd", "plain"),
                "tlbench_s_per_step": median("pgd", "tlbench")},
        "dream": {"steps": args.dream_steps, "plain_s_per_step": median("dream", "plain"),
                  "tlbench_s_per_step": median("dream", "tlbench")},
        "rows": rows,
    }
    for k in ("pgd", "dream"):
        summary[k]["ratio"] = round(summary[k]["plain_s_per_step"] / summary[k]["tlbench_s_per_step"], 3)

    if not args.no_acceptance:
        summary["acceptance"] = {}
        for recipe in ("robust", "lesson"):
            params = DreamParams(target="tabby cat", backbone="efficientnet_lite0", recipe=recipe, steps=300,
                                 img_size=224, eval_on="efficientnet_lite2", out=str(out / "acceptance"),
                                 device="cpu")
            t = time.perf_counter()
            _, res = step_stamps(lambda ctx, p=params: dream_job(p, ctx))
            summary["acceptance"][recipe] = {
                "job_seconds": round(time.perf_counter() - t, 1), "loop_seconds": res["seconds"],
                "lite0_prob": res["probability"], "lite0_rank": res["rank"],
                "lite2_prob": res["eval_on"]["probability"], "lite2_rank": res["eval_on"]["rank"],
                "lite2_top": res["eval_on"]["top"][0]["class"], "png": res["path"],
            }
            print(f"acceptance {recipe}: {summary['acceptance'][recipe]}", file=sys.stderr, flush=True)

    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "attack_dream.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("| per step (s) | plain PyTorch | tlbench | ratio (plain / tlbench) |")
    print("|---|---|---|---|")
    for k, label in (("pgd", f"PGD L-inf, Lite0 224 px ({args.pgd_steps} steps)"),
                     ("dream", f"robust dream, Lite0 224 px ({args.dream_steps} steps)")):
        s = summary[k]
        print(f"| {label} | {s['plain_s_per_step']:.4f} | {s['tlbench_s_per_step']:.4f} | **{s['ratio']:.2f}** |")
    if "acceptance" in summary:
        print("\n| tabby cat, 300 steps, 224 px | seconds | Lite0 prob (rank) | Lite2 prob (rank) | Lite2 top-1 |")
        print("|---|---|---|---|---|")
        for recipe, a in summary["acceptance"].items():
            print(f"| {recipe} | {a['job_seconds']} | {a['lite0_prob']:.3f} ({a['lite0_rank']}) | "
                  f"{a['lite2_prob']:.3f} ({a['lite2_rank']}) | {a['lite2_top']} |")


if __name__ == "__main__":
    main()

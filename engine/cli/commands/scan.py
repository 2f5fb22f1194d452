"""`tlbench scan DATASET`: layout, classes and counts, and every unusable file with its reason."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, print_json, run_cli_job, stdout_console
from engine.core.events import JobFinished
from engine.data.scan import scan_dataset


def run(args) -> int:
    code, final, _ = run_cli_job(args, "scan", lambda ctx: {"info": scan_dataset(args.dataset, ctx=ctx)})
    if code != EXIT_OK or not isinstance(final, JobFinished):  # (a failure's code is never EXIT_OK)
        return code
    info = final.result["info"]
    if args.json:
        print_json(info.to_json())
        return EXIT_OK
    from rich.table import Table

    console = stdout_console()
    console.print(f"[bold]{info.root}[/]  layout [cyan]{info.layout}[/]  {len(info.samples)} usable images, "
                  f"{len(info.classes)} classes, {len(info.unreadable)} unusable")
    table = Table("class", "images", box=None, pad_edge=False)
    for name, count in zip(info.classes, info.counts()):
        table.add_row(name, str(count))
    console.print(table)
    for note in info.notes:
        console.print(f"[yellow]note[/] {note}", markup=True, highlight=False)
    if info.unreadable:
        bad = Table("unusable file", "reason", box=None, pad_edge=False, title="skipped (never modified)")
        for u in info.unreadable:
            bad.add_row(u.path, u.reason)
        console.print(bad)
    return EXIT_OK

"""`tlbench fetch [DATASET] [--dest DIR]`: download a lesson dataset, verify it, unpack it safely."""

from __future__ import annotations

from engine.cli.common import EXIT_OK, print_json, run_cli_job, stdout_console
from engine.core.events import JobFinished
from engine.core.paths import data_dir
from engine.fetch.downloads import human_bytes
from engine.fetch.sources import DATASETS, fetch_dataset, resolve


def run(args) -> int:
    if not args.dataset:
        return list_datasets(args)
    src = resolve(args.dataset)  # an unknown name exits 2 with the allowed names, before any job starts
    code, final, _ = run_cli_job(
        args, "fetch", lambda ctx: fetch_dataset(src.name, args.dest, ctx=ctx, keep_archives=args.keep_archives),
        description=f"fetch {src.name}",
    )
    if code != EXIT_OK or not isinstance(final, JobFinished):  # (a failure's code is never EXIT_OK)
        return code
    result = final.result
    if args.json:
        print_json(result)
        return EXIT_OK
    from rich.markup import escape

    console = stdout_console()

    def say(text: str) -> None:  # whole lines, never wrapped: paths and commands must copy-paste intact
        console.print(text, soft_wrap=True, highlight=False)

    title, path = f"[bold]{escape(result['title'])}[/]", escape(result["path"])
    if result["already_complete"]:
        say(f"{title} is already complete in {path} (nothing downloaded).")
    else:
        classes = f"{result['classes']} class" + ("" if result["classes"] == 1 else "es")
        say(f"{title} is ready in {path}: {result['image_files']:,} image files, {classes}, "
            f"layout {result['layout']} (downloaded {human_bytes(result['downloaded_bytes'])}).")
    for note in result["notes"]:
        say(f"[yellow]note[/] {escape(note)}")
    say(f"Open it:  [bold cyan]{escape(result['command'])}[/]")
    say(f"Check it: {escape(result['scan_command'])}")
    return EXIT_OK


def list_datasets(args) -> int:
    if args.json:
        print_json({"datasets": [s.to_json() for s in DATASETS.values()], "dest": str(args.dest or data_dir())})
        return EXIT_OK
    from rich.table import Table

    table = Table("name", "dataset", "download", box=None, pad_edge=False)
    for s in DATASETS.values():
        table.add_row(s.name, f"{s.title}: {s.description}", human_bytes(s.download_bytes))
    console = stdout_console()
    console.print(table)
    console.print(f"Fetch one with `tlbench fetch NAME` (into {args.dest or data_dir()}, or --dest DIR).",
                  soft_wrap=True, markup=False, highlight=False)
    return EXIT_OK

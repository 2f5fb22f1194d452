"""`tlbench doctor`: versions, device, weights, paths and terminal colour — what to check before a run."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

from engine import __version__
from engine.cli.common import EXIT_OK, print_json, stdout_console
from engine.core import image_protocol
from engine.core.errors import ConfigError
from engine.core.paths import cache_dir, data_dir
from engine.core.runs import runs_root
from engine.models.registry import available_backbones, get_spec, weights_status
from engine.models.weights import hub_checkpoints_dir
from engine.runtime import precision_auto as pa
from engine.runtime.devices import describe_device

TRUECOLOR_FIX = (
    "export COLORTERM=truecolor in the remote shell (e.g. ~/.bashrc), or forward it over SSH: "
    "`SendEnv COLORTERM` in ~/.ssh/config and `AcceptEnv COLORTERM` in the server's sshd_config. "
    "In tmux add `set -as terminal-features ',*:RGB'`."
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def terminal_report() -> dict:
    colorterm = os.environ.get("COLORTERM", "")
    truecolor = colorterm.lower() in ("truecolor", "24bit")
    return {
        "term": os.environ.get("TERM", ""),
        "colorterm": colorterm,
        "truecolor": truecolor,
        "ssh": bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY")),
        "fix": None if truecolor else TRUECOLOR_FIX,
        "images": images_report(),
    }


def images_report() -> dict:
    """The picture protocol the workbench will use and why; a bad TLBENCH_IMAGES is reported, not raised."""
    try:
        found = image_protocol.detect()
    except ConfigError as err:
        return {"protocol": None, "reason": str(err), "certain": True}
    reason = found.reason if found.certain else (
        found.reason + "; the workbench also asks the terminal at start-up (Sixel if it says so)")
    return {"protocol": found.protocol, "reason": reason, "certain": found.certain}


def precision_report(device: str, measure: bool = False) -> dict:
    """What `--precision auto` chooses on this device (the reference network; a run measures its backbone), the
    machine's profile (CPU, flags, GPU capability), the candidates and why, and every choice remembered here.
    `measure`: time fp32 against bf16 now, even on a CPU whose flags say bf16 is emulated
    (TLBENCH_PRECISION_MEASURE)."""
    dev = torch.device(device)
    profile = pa.machine_profile(dev)  # (tests simulate machines through precision_auto's name)
    if measure:
        os.environ[pa.FORCE_ENV] = "1"
        pa.store_path(pa.device_key(dev, profile=profile)).unlink(missing_ok=True)
    found = pa.resolve_auto(dev, profile=profile)
    names, why = pa.candidates(profile, force=os.environ.get(pa.FORCE_ENV) == "1")
    return {"auto": found.choice, "rates": found.rates, "reason": found.reason, "pinned": pa.pinned(),
            "candidates": names, "candidates_reason": why, "cpu": profile.device if dev.type == "cpu" else None,
            "device_name": profile.device, "arch": profile.arch, "cpu_flags": list(profile.cpu_flags),
            "cpu_capability": profile.cpu_capability,
            "cuda_capability": list(profile.cuda_capability) if profile.cuda_capability else None,
            "remembered": [{"backbone": e["key"]["backbone"], "device": e["key"]["device"], "choice": e["choice"],
                            "rates": e.get("rates", {}), "measured": e.get("measured")} for e in pa.remembered()]}


def gather(measure_precision: bool = False) -> dict:
    device, why = describe_device("auto")
    weights = {}
    for name in available_backbones():
        st = weights_status(get_spec(name))
        weights[name] = {"status": st.status, "path": st.path, "detail": st.detail}
    return {
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": _version("torchvision"),
            "textual": _version("textual"),
            "tlbench": __version__,  # also right in a source checkout that was never installed
        },
        "device": {"device": device, "reason": why, "cuda_build": torch.version.cuda,
                   "cpu_threads": torch.get_num_threads()},
        "precision": precision_report(device, measure_precision),
        "weights": weights,
        "paths": {
            "runs": str(runs_root().resolve()),
            "cache": str(cache_dir()),
            "datasets": str(data_dir()),
            "torch_hub_checkpoints": str(hub_checkpoints_dir()),
        },
        "terminal": terminal_report(),
    }


def run(args) -> int:
    report = gather(getattr(args, "measure_precision", False))
    if args.json:
        print_json(report)
        return EXIT_OK
    from rich.table import Table

    console = stdout_console()
    v = report["versions"]
    console.print("[bold]versions[/]  " + "  ".join(f"{k} {val or 'not installed'}" for k, val in v.items()))
    d = report["device"]
    console.print(f"[bold]device[/]    {d['device']} — {d['reason']}")
    pr = report["precision"]
    rates = ", ".join(f"{k} {v:.1f}" for k, v in pr["rates"].items())
    console.print(f"[bold]precision[/] auto: {pr['auto']}" + (f" (images/s: {rates})" if rates else "")
                  + f" — {pr['reason']}", highlight=False)
    console.print(f"[bold]machine[/]   {pr['device_name']} ({pr['arch']}, {pr['cpu_capability']}"
                  + (f", sm_{''.join(map(str, pr['cuda_capability']))}" if pr["cuda_capability"] else "")
                  + f"; flags: {' '.join(pr['cpu_flags']) or 'none of note'}); auto considers "
                  f"{', '.join(pr['candidates'])}: {pr['candidates_reason']}", highlight=False)
    for e in pr["remembered"]:
        rates = ", ".join(f"{k} {v:.1f}" for k, v in e["rates"].items())
        console.print(f"  {e['backbone']} on {e['device']}: {e['choice']} ({rates} images/s, {e['measured']})",
                      highlight=False)
    table = Table("backbone", "weights", "where", box=None, pad_edge=False, title_justify="left")
    colour = {"shipped": "green", "cached": "green", "download": "yellow", "missing": "red"}
    for name, w in report["weights"].items():
        table.add_row(name, f"[{colour[w['status']]}]{w['status']}[/]", w["detail"])
    console.print(table)
    for k, p in report["paths"].items():
        console.print(f"[bold]{k:<22}[/]{p}", highlight=False)
    t = report["terminal"]
    if t["truecolor"]:
        console.print(f"[bold]terminal[/]  truecolor (COLORTERM={t['colorterm']})")
    else:
        console.print(f"[bold]terminal[/]  [yellow]no truecolor reported[/] (TERM={t['term'] or '-'}, "
                      f"COLORTERM={t['colorterm'] or 'unset'}{', over SSH' if t['ssh'] else ''}): previews fall "
                      "back to 256 colours.")
        console.print(f"  fix: {t['fix']}", markup=False)
    im = t["images"]
    console.print(f"[bold]pictures[/]  {im['protocol'] or '[red]error[/]'} — ", end="")
    console.print(f"{im['reason']} (force with {image_protocol.ENV}="
                  f"{'|'.join(image_protocol.PROTOCOLS)})", markup=False, highlight=False)
    return EXIT_OK

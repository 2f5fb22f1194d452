"""The flags of `tlbench doctor` (engine.cli.commands.doctor runs it)."""

from __future__ import annotations

from engine.cli.common import add_json_flag


def register(sub) -> None:
    p = sub.add_parser("doctor", help="versions, device, weights status, paths, terminal colour")
    p.add_argument("--measure-precision", action="store_true",
                   help="time fp32 against bf16 (fp16 on a GPU) now, on a small reference network, and remember it")
    add_json_flag(p)

"""The workbench's one door to the engine's torch side.

The first screen must open without torch (seconds of imports on a small CPU), so every engine function that
imports torch, torchvision or timm is reached through here: each name below imports its module the first time
it is called — on a worker thread, under the import lock of tui.jobs (two threads importing torchvision at once
can fail half-initialised) — and is the engine's own function to the type checker. An import-linter contract
("the workbench imports no torch but through tui.engine_calls") keeps every other module of tui torch-free;
the engine's torch-free spec layer (settings, choices, run files) is imported directly where it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tui.jobs import _import_lock


def _lazy(module: str, name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        with _import_lock:
            target = getattr(importlib.import_module(module), name)
        return target(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, imported on first call."
    return call


if TYPE_CHECKING:
    from engine.adversarial.attack_job import attack_job
    from engine.adversarial.dream_job import dream_job
    from engine.adversarial.robustness import robustness_job
    from engine.adversarial.target import load_target_model
    from engine.evaluate.evaluation import evaluate_run
    from engine.evaluate.explain import explain_pil, overlay
    from engine.features.audit_job import AuditParams, audit_job
    from engine.features.compare import compare
    from engine.models.build import backbone_info, backbone_row
    from engine.models.loading import load_run_model
    from engine.models.registry import available_backbones, imagenet_classes, search_backbones
    from engine.report.render import report_job
    from engine.runtime.devices import resolve_device
    from engine.serve.export import export_run
    from engine.serve.predict import predict_paths
    from engine.train.auto_plan import search_summary
    from engine.train.job import resume, train
    from engine.train.lr_find import lr_find
else:
    attack_job = _lazy("engine.adversarial.attack_job", "attack_job")
    dream_job = _lazy("engine.adversarial.dream_job", "dream_job")
    robustness_job = _lazy("engine.adversarial.robustness", "robustness_job")
    load_target_model = _lazy("engine.adversarial.target", "load_target_model")
    evaluate_run = _lazy("engine.evaluate.evaluation", "evaluate_run")
    explain_pil = _lazy("engine.evaluate.explain", "explain_pil")
    overlay = _lazy("engine.evaluate.explain", "overlay")
    AuditParams = _lazy("engine.features.audit_job", "AuditParams")
    audit_job = _lazy("engine.features.audit_job", "audit_job")
    compare = _lazy("engine.features.compare", "compare")
    backbone_info = _lazy("engine.models.build", "backbone_info")
    backbone_row = _lazy("engine.models.build", "backbone_row")
    load_run_model = _lazy("engine.models.loading", "load_run_model")
    available_backbones = _lazy("engine.models.registry", "available_backbones")
    imagenet_classes = _lazy("engine.models.registry", "imagenet_classes")
    search_backbones = _lazy("engine.models.registry", "search_backbones")
    report_job = _lazy("engine.report.render", "report_job")
    resolve_device = _lazy("engine.runtime.devices", "resolve_device")
    export_run = _lazy("engine.serve.export", "export_run")
    predict_paths = _lazy("engine.serve.predict", "predict_paths")
    search_summary = _lazy("engine.train.auto_plan", "search_summary")
    resume = _lazy("engine.train.job", "resume")
    train = _lazy("engine.train.job", "train")
    lr_find = _lazy("engine.train.lr_find", "lr_find")

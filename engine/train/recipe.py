"""The fine-tuning recipe (engine.train.finetune runs it): the phases of each mode, which stages train and in
which mode their layers are, the parameter groups with discriminative learning rates, the optimizer and the
one-cycle schedule.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from engine.models.classifier import Classifier
from engine.models.family import Stage


@contextlib.contextmanager
def batchnorm_statistics_kept(model: nn.Module):
    """BatchNorm layers that update their running statistics (--train-bn) leave them as they are inside."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in bns:
        m.eval()
    try:
        yield
    finally:
        for m in bns:
            m.train()


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class Phase:
    first: int  # first epoch (1-based)
    last: int
    trainable: int  # how many of the backbone's last stages train (0: the head only)
    lr: float  # the head's peak learning rate
    pct_start: float = 0.3
    div_factor: float = 25.0


def plan_phases(cfg, n_stages: int) -> list[Phase]:
    if cfg.mode == "head":
        return [Phase(1, cfg.epochs, 0, cfg.lr)]
    if cfg.mode == "partial":
        return [Phase(1, cfg.epochs, min(cfg.unfreeze, n_stages), cfg.lr)]
    frozen = cfg.freeze_epochs
    phases = [Phase(1, frozen, 0, cfg.lr, pct_start=0.99)] if frozen else []
    phases.append(Phase(frozen + 1, cfg.epochs, n_stages, cfg.lr / 2 if frozen else cfg.lr, div_factor=5.0))
    return phases


def phase_index(phases: list[Phase], epoch: int) -> int:
    for i, ph in enumerate(phases):
        if ph.first <= epoch <= ph.last:
            return i
    return len(phases) - 1


def set_trainable(model: Classifier, stages: list[Stage], n: int) -> list[Stage]:
    """Freeze the backbone but its last `n` stages; returns the trainable stages."""
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    trainable = stages[len(stages) - n:] if n else []
    for stage in trainable:
        for p in stage.parameters():
            p.requires_grad_(True)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return trainable


# With --train-bn, trained BatchNorm layers update their running statistics. EfficientNet-Lite's momentum is
# TensorFlow's 0.99 (0.01 here): over a short fine-tune those statistics would lag far behind the changing
# weights, so trained layers use at least PyTorch's default.
MIN_BN_MOMENTUM = 0.1


def set_bn_momentum(stages: list[Stage]) -> None:
    for stage in stages:
        for module in stage.modules:
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
                    m.momentum = max(m.momentum, MIN_BN_MOMENTUM)


def set_train_mode(model: Classifier, stages: list[Stage], trainable: list[Stage], train_bn: bool = False) -> None:
    """Train mode, except what is frozen: a frozen stage is in eval mode (its BatchNorm statistics never
    move). Trained stages keep their BatchNorm statistics too unless `train_bn` (Keras's advice for
    fine-tuning: small batches of a small dataset would replace ImageNet's statistics with noise, and the
    head would see the features shift under it); their BatchNorm scale and shift still learn."""
    model.train()
    if not trainable:
        model.backbone.eval()  # a fixed feature extractor, dropout included
        return
    keep = {id(s) for s in trainable}
    for stage in stages:
        if id(stage) not in keep:
            for m in stage.modules:
                m.eval()
        elif not train_bn:
            for m in stage.modules:
                for bn in m.modules():
                    if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                        bn.eval()


def stage_lr(lr: float, i: int, k: int) -> float:
    """fastai's slice(lr/100, lr) spread over the backbone's own stages: the head learns at lr, the last
    stage at lr/10, down to lr/100 for the first (geometric steps between)."""
    if k <= 1:
        return lr / 10
    return lr / 10 * (1 / 10) ** ((k - 1 - i) / (k - 1))


def param_groups(model: Classifier, stages: list[Stage], trainable: list[Stage], lr: float,
                 weight_decay: float) -> list[dict]:
    """One group per stage (discriminative rates), the head last; no weight decay on biases and norms.

    A stage with an `lr_scale` (a timm transformer's layer-wise decay, engine.models.families.timm_build) trains
    at lr * lr_scale instead of stage_lr's fastai spread, and its `no_decay` parameters (position embeddings,
    class token) take no weight decay, as in timm's param_groups_layer_decay."""
    k = len(stages)
    groups = []

    def add(params, group_lr, name, no_decay=frozenset()):
        params = [p for p in params if p.requires_grad]
        decay = [p for p in params if p.ndim > 1 and id(p) not in no_decay]
        rest = [p for p in params if p.ndim <= 1 or id(p) in no_decay]
        if decay:
            groups.append({"params": decay, "lr": group_lr, "weight_decay": weight_decay, "name": name})
        if rest:
            groups.append({"params": rest, "lr": group_lr, "weight_decay": 0.0, "name": name + " (no decay)"})

    keep = {id(s) for s in trainable}
    for i, stage in enumerate(stages):
        if id(stage) in keep:
            scaled = stage_lr(lr, i, k) if stage.lr_scale is None else lr * stage.lr_scale
            add(stage.parameters(), scaled, stage.name, stage.no_decay)
    add(model.head.parameters(), lr, "head")
    return groups


def make_optimizer(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(optimizer, phase: Phase, total_steps: int):
    if total_steps < 4:  # too short for a cycle: a constant rate
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
        pct_start=phase.pct_start, div_factor=phase.div_factor)


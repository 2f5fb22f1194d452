"""What an attack, a robustness sweep and a dream are asked to do: their parameters, defaults and checks.

Part of the spec layer, so no torch here (an import-linter contract): `tlbench --help` builds every
subcommand's flags from these dataclasses' fields (engine.cli.fields), and must answer without the seconds a
torch import takes. The jobs live in attack_job,
robustness and dream_job; the arithmetic in attacks and dreams.

eps and step sizes are in [0, 1] pixel units (the model normalises images itself): eps 4/255 lets every pixel
move by 4 grey levels. They may be written "4/255" (engine.core.checks.parse_number): their flags keep the
text (metadata parse=str) and validate() reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.core.checks import check_number, check_whole, parse_number
from engine.core.choices import DEVICES, PRECISIONS
from engine.core.errors import ConfigError, choice_error
from engine.core.settings import setting
from engine.models.spec import DEFAULT_BACKBONE

METHODS = ("pgd", "fgsm", "gd")
NORMS = ("linf", "l2")
DEFAULT_STEPS = {"pgd": 10, "fgsm": 1, "gd": 100}
# The lesson steps by eta = 1 on VGG fed unnormalised inputs. Our model divides by the ImageNet std (~0.226)
# inside, so the same step measured in the network's input units is 1 * 0.226^2 ~ 0.05 here.
DEFAULT_GD_LR = 0.05
DEFAULT_SWEEP = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)

RECIPES = ("maco", "robust", "lesson")
# The lesson's loss is 10 * CE + 0.005 * TV(x) with x in 0-255 pixel units. tlbench images are in [0, 1]:
# x_255 = 255 * x_01, and TV is a sum of absolute pixel differences, so TV(x_255) = 255 * TV(x_01). The same
# objective in [0, 1] units is therefore 10 * CE + (0.005 * 255) * TV(x_01) = 10 * CE + 1.275 * TV(x_01).
LESSON_CE_WEIGHT = 10.0
LESSON_TV_WEIGHT = 0.005 * 255
DEFAULT_LR = {"maco": 0.1, "robust": 0.05, "lesson": 0.01}
# maco's steps are each a batch of DEFAULT_CROPS views: fewer of them reach further. 160: the most that stays
# well under a minute at 224 px on a 2-core CPU (~0.25 s a step); 64 left 4 of 12 panel classes second on Lite2
# (bench/attack_dream.py)
DEFAULT_DREAM_STEPS = {"maco": 160, "robust": 300, "lesson": 300}
DEFAULT_CROPS = 8
LESSON_WHY = ("The lesson recipe follows one network's gradient in pixel space: it grows high-frequency "
              "patterns that this network reads as the class and no other network does, so it fools its own "
              "model and looks like noise to a second one.")


def split_list(text: str | list | None) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c'] (a list passes through): several classes, backbones or judges."""
    if text is None:
        return []
    parts = text if isinstance(text, list) else str(text).split(",")
    return [str(p).strip() for p in parts if str(p).strip()]

PRECISION_HELP = ("auto | fp32 | bf16 | fp16: autocast inside the model's forward (the image and its "
                  "gradient stay fp32); auto is bf16/fp16 on CUDA, fp32 elsewhere")


def _device() -> Any:
    return setting("auto", "auto | cpu | cuda | mps", choices=DEVICES)


def _precision() -> Any:
    return setting("auto", PRECISION_HELP, choices=PRECISIONS)


def check_precision(value) -> None:
    if value not in PRECISIONS:
        raise choice_error("precision", value, PRECISIONS)


def parse_eps(text: str | float, flag: str = "eps") -> float:
    """'4/255', '0.0157' or a number -> float. The range is checked by the parameter classes."""
    try:
        return parse_number(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a number: write it like 4/255 or 0.0157.") from None


def parse_eps_list(text: str) -> list[float]:
    """'0,1/255,2/255' -> floats (ranges checked by RobustnessParams)."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    if not parts:
        raise ConfigError("--eps is empty: give budgets like 0,1/255,2/255,4/255,8/255.")
    return [parse_eps(p) for p in parts]


def eps_text(eps: float) -> str:
    """8/255 for values on the 1/255 grid, else the number."""
    n = eps * 255
    if eps and abs(n - round(n)) < 1e-9:
        return f"{round(n)}/255"
    return f"{eps:g}"


def check_eps(eps: float, flag: str = "--eps") -> None:
    check_number(flag, eps, 0, 1, fix="eps is in pixel units of [0, 1] images, so use a value from 0 to 1, e.g. "
                 "4/255 (4 grey levels)")


def check_steps(steps) -> None:
    check_whole("--steps", steps, 1, 100_000, fix="use a whole number of steps from 1 to 100000")


def check_step_size(value) -> float | None:
    """None (the method's default), or a step given as a number or text ("1/255")."""
    if value is None:
        return None
    return check_number("--step-size", parse_eps(value, "--step-size"), 0, 1e6, above=True,
                        fix="use a positive number, e.g. 1/255")


def check_weight(flag: str, value) -> None:
    check_number(flag, value, 0, fix="use 0 or a positive weight")


def default_step_size(method: str, eps: float, steps: int) -> float:
    """PGD: 2.5 * eps / steps (Madry et al.: enough to cross the ball and move along it); FGSM: eps."""
    if method == "fgsm":
        return eps
    if method == "gd":
        return DEFAULT_GD_LR
    return 2.5 * eps / steps


def check_attack_kind(method: str, norm: str, methods: tuple[str, ...] = METHODS, what: str = "attack method"):
    if method not in methods:
        raise choice_error(what, method, methods)
    if norm not in NORMS:
        raise choice_error("norm", norm, NORMS)
    if method == "fgsm" and norm != "linf":
        raise ConfigError("FGSM is an L-inf attack: use --norm linf, or --method pgd --norm l2.")


# ------------------------------------------------------------------------------------ attack


@dataclass
class AttackParams:
    """An attack on image files, validated by `validate()`; the CLI and the workbench fill it."""

    images: list[str] = setting(help="image files", factory=list)
    run_dir: str | None = setting(None, "a trained run (its classes)")
    backbone: str | None = setting(None, "attack this backbone's ImageNet head instead of a run")
    method: str = setting("pgd", "pgd | fgsm | gd (the lesson's unbounded gradient descent)")
    norm: str = setting("linf", "linf | l2 (pgd)")
    eps: float = setting(4 / 255,
                         "budget in [0, 1] pixel units, e.g. 4/255 (default) or 0.5 for l2; gd ignores it",
                         parse=str)
    step_size: float | None = setting(None, "pgd: default 2.5*eps/steps; gd: learning rate (0.05)", parse=str)
    steps: int | None = setting(None, "pgd 10, gd 100 by default")
    random_start: bool = setting(False, "pgd: start at a random point of the eps-ball")
    target: str | None = setting(None,
                                 "class to reach, by name (case-insensitive) or index; without it the attack "
                                 "moves away from the predicted class")
    tv_weight: float = setting(0.0, "gd: total-variation weight on [0, 1] pixels")
    eval_on: str | None = setting(None,
                                  "also classify the adversarial images with this backbone (transfer check)",
                                  metavar="BACKBONE")
    out: str | None = setting(None,
                              "folder for the PNGs and summary.json (default: under the run or runs/attacks)")
    img_size: int | None = setting(None, "input size in px (default: the model's)")
    top_k: int = setting(5, "predictions listed before and after")
    seed: int = setting(0, "random seed (random start)")
    device: str = _device()
    precision: str = _precision()

    def validate(self) -> "AttackParams":
        check_precision(self.precision)
        check_attack_kind(self.method, self.norm)
        self.eps = parse_eps(self.eps)
        check_eps(self.eps)
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.method]
        check_steps(self.steps)
        if self.method == "fgsm":
            self.steps = 1
        self.step_size = check_step_size(self.step_size)
        check_weight("--tv-weight", self.tv_weight)
        if self.img_size is not None:
            check_whole("--img-size", self.img_size, 32, 1024, fix="use 32 to 1024 pixels")
        check_whole("--top-k", self.top_k, 1, fix="use 1 or more")
        if not self.images:
            raise ConfigError("No images to attack: pass one or more image files.")
        if self.run_dir is None and self.backbone is None:
            self.backbone = DEFAULT_BACKBONE
        return self

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else default_step_size(self.method, self.eps,
                                                                                    self.steps or 1)


# ------------------------------------------------------------------------------------ robustness


@dataclass
class RobustnessParams:
    """A robustness sweep of a trained run over its validation split."""

    run_dir: str = setting("", "a run directory (runs/<…>)")
    data: str | None = setting(None, "the dataset (default: the one the run was trained on)")
    # the CLI passes its text ("0,1/255,…"); validate() reads it
    eps: list[float] = setting(help="comma-separated budgets in [0, 1] pixel units; 0 = clean accuracy",
                               factory=lambda: list(DEFAULT_SWEEP), parse=str)
    method: str = setting("pgd", "pgd | fgsm")
    norm: str = setting("linf", "linf | l2 (pgd)")
    steps: int = setting(10, "pgd steps")
    step_size: float | None = setting(None, "pgd step (default 2.5*eps/steps)", parse=str)
    random_start: bool = setting(False, "pgd: random start in the eps-ball")
    batch_size: int = setting(32, "images per batch")
    limit: int | None = setting(None, "attack at most this many validation images")
    seed: int = setting(0, "random seed (random start)")
    device: str = _device()
    precision: str = _precision()
    workers: int | None = setting(None, "DataLoader workers (default: auto)")

    def validate(self) -> "RobustnessParams":
        check_precision(self.precision)
        check_attack_kind(self.method, self.norm, ("pgd", "fgsm"), "robustness method")
        eps = parse_eps_list(self.eps) if isinstance(self.eps, str) else self.eps
        if not eps:
            raise ConfigError("--eps is empty: give budgets like 0,1/255,2/255,4/255,8/255.")
        eps = [parse_eps(e) for e in eps]
        for e in eps:
            check_eps(e)
        self.eps = sorted(set(eps))
        check_steps(self.steps)
        self.step_size = check_step_size(self.step_size)
        check_whole("--batch-size", self.batch_size, 1, 4096, fix="use 1 to 4096")
        if self.limit is not None:
            check_whole("--limit", self.limit, 1, fix="use 1 or more images")
        if not self.run_dir:
            raise ConfigError("No run given: pass a run directory (runs/<…>).")
        return self

    @property
    def key(self) -> str:
        return f"{self.method}-{self.norm}"


# ------------------------------------------------------------------------------------ dream


@dataclass
class DreamParams:
    """A dream (or a gallery of them), validated by `validate()`; the CLI and the workbench fill it."""

    target: str = setting("",
                          "class by name (case-insensitive, e.g. 'tabby cat') or index; several, "
                          "comma-separated ('goldfish,pizza,teapot'), make a gallery with a contact sheet",
                          flag=("--target", "--class"), required=True)
    run_dir: str | None = setting(None, "a run directory (omit for --backbone)")
    backbone: str | None = setting(None,
                                   f"dream with this backbone's ImageNet head (default {DEFAULT_BACKBONE} "
                                   "without a run); several, comma-separated, dream against all of them at once")
    recipe: str = setting("maco",
                          "maco (default; phase-only Fourier, many crops per step: another network sees the "
                          "class) | robust (Fourier + transformations) | lesson (pixels, CE + TV: fools only "
                          "its own network)")
    steps: int | None = setting(None, "optimisation steps (maco 160, robust and lesson 300)")
    crops: int = setting(DEFAULT_CROPS, "maco: random crops per step, one batch")
    img_size: int | None = setting(None, "image side in px (default: the model's)")
    lr: float | None = setting(None, "Adam learning rate (maco 0.1, robust 0.05, lesson 0.01)")
    tv_weight: float | None = setting(None,
                                      "total variation on [0, 1] pixels (lesson default 1.275 = 0.005 x 255; "
                                      "maco and robust 0)")
    l2_weight: float = setting(0.0, "weight of sum((x - 0.5)^2)")
    jitter: int = setting(0, "lesson recipe: random shift up to N px per step")
    preview_every: int = setting(25, "a preview frame every N steps (0: none)")
    eval_on: str | None = setting(None,
                                  "ask other networks what they see: backbones or run directories, "
                                  "comma-separated", metavar="BACKBONE|RUN_DIR,...")
    out: str | None = setting(None, "PNG file or folder (default: under the run or runs/dreams)")
    seed: int = setting(0, "random seed (initial image, transformations)")
    device: str = _device()
    precision: str = _precision()

    def validate(self) -> "DreamParams":
        if self.recipe not in RECIPES:
            raise choice_error("recipe", self.recipe, RECIPES)
        check_precision(self.precision)
        if not self.targets:
            raise ConfigError("No target class: pass a class name or index, e.g. --target 'tabby cat'.")
        if self.steps is None:
            self.steps = DEFAULT_DREAM_STEPS[self.recipe]
        check_whole("--steps", self.steps, 1, 100_000)
        check_whole("--crops", self.crops, 1, 1024, fix="use 1 to 1024 crops (8 by default)")
        if self.img_size is not None:
            check_whole("--img-size", self.img_size, 32, 1024)
        check_whole("--jitter", self.jitter, 0, 256)
        check_whole("--preview-every", self.preview_every, 0, 100_000)
        if self.lr is not None:
            check_number("--lr", self.lr, 0, 10, above=True, fix="use a positive learning rate such as 0.05")
        if self.tv_weight is not None:
            check_weight("--tv-weight", self.tv_weight)
        check_weight("--l2-weight", self.l2_weight)
        if self.run_dir is not None and self.backbone is not None:
            raise ConfigError("Give a run directory or --backbone, not both (an ensemble is of backbones: "
                              "--backbone a,b).")
        if self.run_dir is None and not self.backbones:
            self.backbone = DEFAULT_BACKBONE
        if self.out and len(self.targets) > 1 and str(self.out).lower().endswith(".png"):
            raise ConfigError(f"--out {self.out} names one PNG, but {len(self.targets)} classes make several: "
                              "give a folder.")
        return self

    @property
    def targets(self) -> list[str]:
        return split_list(self.target)

    @property
    def backbones(self) -> list[str]:
        return split_list(self.backbone)

    @property
    def judges(self) -> list[str]:
        return split_list(self.eval_on)

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.recipe]

    @property
    def resolved_tv(self) -> float:
        if self.tv_weight is not None:
            return self.tv_weight
        return LESSON_TV_WEIGHT if self.recipe == "lesson" else 0.0

"""What the screens share: the open dataset, the training settings, the run being looked at; and the small
state file that remembers the settings and the current run across restarts."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from engine.core.files import atomic_write_json
from engine.core.runs import list_runs
from engine.train.config import TrainConfig

if TYPE_CHECKING:
    from engine.data.layouts import DatasetInfo


@dataclass
class ImageRef:
    """An image picked somewhere (Data, Results) for another screen (Attack)."""

    path: str
    label: str | None = None
    origin: str = ""


class Changes(TypedDict, total=False):
    """What a screen may change of the shared state (Workbench.update)."""

    dataset: Path | None
    info: DatasetInfo | None
    config: dict[str, Any]
    run_dir: Path | None
    picked_image: ImageRef | None


@dataclass
class Workbench:
    dataset: Path | None
    runs_dir: str | None = None
    info: DatasetInfo | None = None
    # Training settings as set on the Model screen: TrainConfig field name -> value (defaults otherwise).
    config: dict[str, Any] = field(default_factory=dict)
    config_error: str | None = None
    run_dir: Path | None = None  # the run Results shows and Attack and Dream use
    picked_image: ImageRef | None = None
    version: int = 0  # bumped on every change, so a screen knows whether to reload when shown
    on_change: Callable[[], None] | None = field(default=None, repr=False, compare=False)  # the app saves

    def update(self, **changes: Unpack[Changes]) -> None:
        """Change what the screens share: each screen reloads when it is shown next, the app saves the settings
        and the current run (screens call WorkbenchScreen.share, which also marks the change as seen there)."""
        for name, value in changes.items():
            setattr(self, name, value)
        self.changed()

    def changed(self) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    def remembered(self) -> dict:
        """What the state file keeps: the settings and the current run (the dataset comes from the command)."""
        return {"version": STATE_VERSION, "config": dict(self.config),
                "run_dir": str(self.run_dir) if self.run_dir is not None else None}

    def train_config(self) -> TrainConfig:
        """The TrainConfig a training job runs with (imports torch: call it from a worker)."""
        values = {**self.config, "dataset": str(self.dataset or ""), "runs_dir": self.runs_dir}
        return TrainConfig.from_dict(values)


def display_path(path: str | os.PathLike | None) -> str:
    """A path as short as it stays unambiguous: relative to the working directory, else with ~."""
    if path is None:
        return "-"
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve())) or "."
    except (ValueError, OSError):
        pass
    home = str(Path.home())
    text = str(p)
    return "~" + text[len(home):] if home != "/" and text.startswith(home + os.sep) else text


# ------------------------------------------------------------------------------------------- state file

STATE_ENV = "TLBENCH_STATE"  # a path: where the state file lives (tests point it into a temporary folder)
STATE_VERSION = 1


def state_path() -> Path:
    """$TLBENCH_STATE, else $XDG_CONFIG_HOME/tlbench/state.json, else ~/.config/tlbench/state.json."""
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "tlbench" / "state.json"


def load_state(path: Path) -> tuple[dict, str | None]:
    """(the remembered state, a one-line notice when the file had to be ignored). Never raises: a missing
    file is a first start; an unreadable or corrupt one is ignored (and left as it is, for a person to see)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except OSError as err:
        return {}, f"Ignored {display_path(path)} ({err.strerror or err}): settings start from the defaults."
    try:
        data = json.loads(text)
    except ValueError as err:
        return {}, f"Ignored {display_path(path)}: not valid JSON ({err}); settings start from the defaults."
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        return {}, f"Ignored {display_path(path)}: not a tlbench state file; settings start from the defaults."
    run_dir = data.get("run_dir")
    return {"config": data.get("config") or {}, "run_dir": run_dir if isinstance(run_dir, str) else None}, None


def save_state(path: Path, state: dict) -> None:
    """Atomically (a temporary file, then os.replace): a crash mid-write leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, state)


def newest_run(root: Path) -> Path | None:
    """The most recent run in `root` that has a model (best.pt), for a start with no run remembered."""
    try:
        return next((p for p in list_runs(root) if (p / "best.pt").is_file()), None)
    except OSError:
        return None

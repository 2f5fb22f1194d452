"""What the screens share: the open dataset, the training settings, the run being looked at."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import TrainConfig
    from engine.datasets import DatasetInfo


@dataclass
class ImageRef:
    """An image picked somewhere (Data, Results) for another screen (Attack)."""

    path: str
    label: str | None = None
    origin: str = ""


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

    def changed(self) -> None:
        self.version += 1

    def train_config(self) -> TrainConfig:
        """The TrainConfig a training job runs with (imports torch: call it from a worker)."""
        from engine.config import TrainConfig

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

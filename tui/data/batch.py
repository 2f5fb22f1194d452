"""`b` on the Data screen: a batch of the training data with its labels, as fastai's show_batch draws it.

The images are drawn as the loader would draw a batch (shuffled, the train side of the very split a run of the
current settings uses), before augmentation and resizing; `b` again draws the next batch.
"""

from __future__ import annotations

import random

from textual.binding import Binding

from engine.data.layouts import DatasetInfo
from tui.widgets.fitline import Part
from tui.widgets.gallery import GalleryGrid, GalleryScreen
from tui.widgets.grid import Thumb
from tui.widgets.thumbnails import ThumbnailCache

BATCH_MOST = 64  # a larger batch size is shown 64 at a time: the grid scrolls, the point is to look
CELL_WIDTH = 16  # 2 rows of 4 at 80x24, 3 rows of 7 at 120x35


class BatchScreen(GalleryScreen):
    BINDINGS = [Binding("b", "next_batch", "Next batch", id="batch.next")]

    def __init__(self, info: DatasetInfo, sides: dict[str, str], batch_size: int, cache: ThumbnailCache,
                 seed: int = 0) -> None:
        super().__init__("show_batch", GalleryGrid(cache, cell_width=CELL_WIDTH, min_columns=2, id="batch-grid"))
        self.info, self.sides = info, sides
        self.size_wanted = max(1, min(batch_size, BATCH_MOST))
        self.rng = random.Random(seed)
        self.drawn = 0

    def training_images(self) -> list:
        """The train side of the split; every usable image when there is no split yet."""
        if not self.sides:
            return list(self.info.samples)
        return [s for s in self.info.samples if self.sides.get(s.path) == "train"]

    def fill(self) -> None:
        pool = self.training_images()
        batch = self.rng.sample(pool, min(self.size_wanted, len(pool)))
        self.drawn += 1
        classes = self.info.classes
        self.grid.set_items([Thumb(s.path, classes[s.label], classes[s.label]) for s in batch],
                            "no training images")
        self.set_title(f"A batch of the training data: {len(batch)} of {len(pool)} images, labels under them",
                       f" · batch {self.drawn}", Part(" · as loaded, before augmentation", optional=True))

    def action_next_batch(self) -> None:
        self.fill()


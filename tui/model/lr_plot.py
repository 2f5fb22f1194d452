"""The learning-rate range test's curve: smoothed loss against the learning rate (log scale), the
suggestion marked."""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot


class LrPlot(PlotextPlot):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[tuple[float, float]] = []
        self.suggestion: float | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.redraw()

    def set_points(self, points: list[tuple[float, float]], suggestion: float | None = None) -> None:
        self.points = list(points)
        self.suggestion = suggestion
        self.redraw()

    def redraw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("lr range test: smoothed loss")
        plt.xlabel("learning rate (log)")
        shown = [(lr, loss) for lr, loss in self.points if lr > 0 and math.isfinite(loss)]
        if shown:
            plt.xscale("log")
            xs, ys = zip(*shown)
            plt.plot(list(xs), list(ys), marker="braille", label="loss")
            if self.suggestion:
                plt.vline(self.suggestion, "green")
        self.refresh()

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
        # log10 of the rate on the x axis, ticks at whole decades labelled 1e-5 …: plotext's own log scale
        # labels a decade as 0.000000100, which does not fit 80 columns
        shown = [(math.log10(lr), loss) for lr, loss in self.points if lr > 0 and math.isfinite(loss)]
        if shown:
            xs, ys = zip(*shown)
            plt.plot(list(xs), list(ys), marker="braille")
            decades: list[float] = list(range(math.floor(min(xs)), math.ceil(max(xs)) + 1))
            step = max(1, len(decades) // 6)
            ticks = decades[::step]
            plt.xticks(ticks, [f"1e{k}" for k in ticks])
            if self.suggestion:
                plt.vline(math.log10(self.suggestion), "green")
        self.refresh()

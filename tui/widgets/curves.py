"""Loss and accuracy per epoch, drawn by textual-plotext (a maintained plotting widget)."""

from __future__ import annotations

from textual_plotext import PlotextPlot


class CurvePlot(PlotextPlot):
    """Named series against epochs; redraws when told (once per epoch is plenty)."""

    def __init__(self, title: str, series: list[tuple[str, str]], *, ylim: tuple[float, float] | None = None,
                 xlabel: str = "epoch", id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.xlabel = xlabel  # rows carry the x value under "epoch" (a step, for attacks and dreams)
        self.series = series  # (metric key, legend label)
        self.ylim = ylim
        self.history: list[dict] = []

    def on_mount(self) -> None:
        super().on_mount()
        self.redraw()

    def set_history(self, rows: list[dict]) -> None:
        self.history = list(rows)
        self.redraw()

    def add(self, row: dict) -> None:
        self.history.append(row)
        self.redraw()

    def redraw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel(self.xlabel)
        epochs = [r["epoch"] for r in self.history]
        drawn = False
        for key, label in self.series:
            points = [(e, r[key]) for e, r in zip(epochs, self.history)
                      if isinstance(r.get(key), (int, float)) and r[key] == r[key]]
            if points:
                xs, ys = zip(*points)
                plt.plot(list(xs), list(ys), label=label, marker="braille")
                drawn = True
        if self.ylim:
            plt.ylim(*self.ylim)
        if not drawn:
            plt.xlim(1, 2)
        self.refresh()

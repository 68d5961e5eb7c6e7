"""The migration page's lag chart: an inline SVG drawn on the server from the samples the target keeps
(`atlas/migration_progress.py`), so that the page needs no chart library and no script to show it.

It is there from the migration's start: its time axis runs from the start to now (or to the end), so
that the copy — before the first sample, since the lag is measured once changes replicate — shows as a
band of its own rather than as no chart at all. Both axes carry values (times in UTC, seconds of lag),
and each sample is a dot whose `<title>` the browser shows on hover: "12:04:31 UTC · lag 0.42 s".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 608, 14, 170  # the plot's box, in the SVG's coordinates
# Steps of the time axis, in seconds: the first that leaves at most six ticks is used.
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Tick:
    at: float  # x for the time axis, y for the lag's
    label: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class LagChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    time_ticks: list[Tick]
    lag_ticks: list[Tick]
    points: str  # the polyline's "x,y x,y …"; empty below two samples
    dots: list[Dot]
    copy_until: float  # the copy band's right edge (x): from the start to the first sample (or to now)
    samples: int
    latest: str | None  # the last sample, in words


def _clock(moment: float, step: float) -> str:
    shown = datetime.fromtimestamp(moment, UTC)
    return shown.strftime("%H:%M" if step >= 60 and moment % 60 == 0 else "%H:%M:%S")


def _lag_step(highest: float) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `highest` into at most four."""
    magnitude = 10.0 ** math.floor(math.log10(highest / 4))
    return next(factor * magnitude for factor in (1.0, 2.0, 2.5, 5.0, 10.0) if highest / (factor * magnitude) <= 4)


def _seconds(value: float) -> str:
    return f"{value:g} s"


def lag_chart(samples: Sequence[Sequence[float]], started: datetime, ended: datetime) -> LagChart:
    """`samples` are [unix seconds, lag seconds] in time order (none during the copy); the chart covers
    `started` (the migration's creation) to `ended` (now, or when it finished)."""
    start = started.timestamp()
    end = max(ended.timestamp(), samples[-1][0] if samples else start, start + 10)
    span = end - start
    highest = max([lag for _, lag in samples] + [1.0])
    lag_step = _lag_step(highest)
    top_lag = math.ceil(highest / lag_step - 1e-9) * lag_step
    plot_width, plot_height = RIGHT - LEFT, BOTTOM - TOP

    def x_of(moment: float) -> float:
        return round(LEFT + (moment - start) / span * plot_width, 1)

    def y_of(lag: float) -> float:
        return round(BOTTOM - lag / top_lag * plot_height, 1)

    time_step = next((step for step in TIME_STEPS if span / step <= 6), TIME_STEPS[-1])
    first_tick = math.ceil(start / time_step) * time_step
    time_ticks = [Tick(x_of(moment), _clock(moment, time_step))
                  for moment in (first_tick + index * time_step for index in range(int(span // time_step) + 1))
                  if moment <= end]
    lag_ticks = [Tick(y_of(index * lag_step), _seconds(round(index * lag_step, 6)))
                 for index in range(int(round(top_lag / lag_step)) + 1)]
    dots = [Dot(x_of(moment), y_of(lag), f"{datetime.fromtimestamp(moment, UTC):%H:%M:%S} UTC · lag {lag:.2f} s")
            for moment, lag in samples]
    latest = (f"lag {samples[-1][1]:.2f} s at {datetime.fromtimestamp(samples[-1][0], UTC):%H:%M:%S} UTC"
              if samples else None)
    return LagChart(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM, time_ticks, lag_ticks,
                    " ".join(f"{dot.x},{dot.y}" for dot in dots) if len(dots) > 1 else "", dots,
                    x_of(samples[0][0]) if samples else float(RIGHT), len(samples), latest)

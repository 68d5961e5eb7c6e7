"""The migration page's lag chart: an inline SVG drawn on the server from the samples the target keeps
(`atlas/migrations.py`), so that the page needs no chart library and no script to show it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, MARGIN = 600, 160, 30


@dataclass(frozen=True)
class LagChart:
    points: str  # the polyline's "x,y x,y …", in the SVG's coordinates
    top_seconds: float  # what the top of the chart stands for
    span_seconds: float  # how much time it covers
    samples: int


def lag_chart(samples: Sequence[Sequence[float]]) -> LagChart | None:
    """`samples` are [unix seconds, lag seconds] in time order; None until there are two."""
    if len(samples) < 2:
        return None
    start, end = samples[0][0], samples[-1][0]
    span = max(end - start, 1.0)
    top = max(max(lag for _, lag in samples), 1.0)
    plot_width, plot_height = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    points = " ".join(f"{MARGIN + (moment - start) / span * plot_width:.1f},"
                      f"{HEIGHT - MARGIN - lag / top * plot_height:.1f}" for moment, lag in samples)
    return LagChart(points, round(top, 1), round(span), len(samples))

"""The briefing's plots as SVG, drawn with matplotlib's SVG backend (no pyplot state).

Each function returns an SVG document (text), or ``None`` when there is nothing to plot
(the page then shows its empty-state text). Text stays text (``svg.fonttype: none``) so
the plots are small and print sharply; each figure hashes its ids with its own salt, so
several plots inlined in one page never share an id.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, ParamSpec, TypeVar

import matplotlib as mpl
from matplotlib.figure import Figure

from healthos_core.operations.beds import BedPool
from reasoning.briefing import CollectionsDay, QueueWaits

__all__ = ["collections_svg", "occupancy_svg", "waits_svg"]

_SIZE: Final = (7.0, 2.8)  # inches: the width of an A4 page's text
#: rc settings (typed loosely: matplotlib's stubs list every key as a Literal).
_RC: Final[dict[Any, Any]] = {
    "svg.fonttype": "none",
    "font.size": 8,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_OK: Final = "#2b6cb0"
_OVER: Final = "#c53030"
_TARGET: Final = "#4a5568"
#: matplotlib's rcParams are process-global: one plot at a time (the API renders in threads).
_LOCK: Final = threading.Lock()
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_at_a_time(function: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(function)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _LOCK:
            return function(*args, **kwargs)

    return locked


def _svg(figure: Figure, salt: str) -> str:
    buffer = io.StringIO()
    settings: dict[Any, Any] = {**_RC, "svg.hashsalt": salt}
    with mpl.rc_context(settings):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure() -> Figure:
    with mpl.rc_context(_RC):
        return Figure(figsize=_SIZE, layout="constrained")


@_one_at_a_time
def occupancy_svg(pools: Sequence[BedPool], facility_names: dict[str, str]) -> str | None:
    """Bar chart of occupancy (occupied ÷ available, KH03) per pool, with each threshold.

    Parameters
    ----------
    pools : sequence of BedPool
        The census (:func:`healthos_core.operations.bed_census`).
    facility_names : dict of str to str
        Facility id → name, for the labels when there are several facilities.

    Returns
    -------
    str or None
        SVG; ``None`` without a pool that has an available bed.
    """
    shown = [p for p in pools if p.occupancy is not None]
    if not shown:
        return None
    several = len({p.facility_id for p in shown}) > 1
    labels = [
        (f"{facility_names.get(p.facility_id or '', p.facility_id)}\n" if several else "")
        + p.pool.replace("_", " ")
        for p in shown
    ]
    with mpl.rc_context(_RC):
        figure = _figure()
        axes = figure.add_subplot()
        values = [100 * (p.occupancy or 0.0) for p in shown]
        colors = [_OVER if p.over_threshold else _OK for p in shown]
        bars = axes.bar(range(len(shown)), values, color=colors, width=0.6)
        for n, pool in enumerate(shown):
            axes.hlines(100 * pool.threshold, n - 0.4, n + 0.4, colors=_TARGET, linestyles="dashed")
        axes.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=2)
        axes.set_xticks(range(len(shown)), labels)
        axes.set_ylim(0, max(105.0, *(v + 10 for v in values)))
        axes.set_xlim(-0.75, max(len(shown), 3) - 0.25)
        axes.set_ylabel("occupied ÷ available (%)")
        axes.set_title("Bed occupancy per pool (dashed: the pool's threshold)")
    return _svg(figure, "briefing-occupancy")


@_one_at_a_time
def waits_svg(waits: Sequence[QueueWaits]) -> str | None:
    """Line chart of the mean wait by hour of arrival at each queue point.

    Returns
    -------
    str or None
        SVG; ``None`` when no ticket of the day has started its service.
    """
    shown = [w for w in waits if any(n for n in w.seen)]
    if not shown:
        return None
    with mpl.rc_context(_RC):
        figure = _figure()
        axes = figure.add_subplot()
        for queue in shown:
            known = [(h, v) for h, v in enumerate(queue.mean_wait_minutes) if v is not None]
            hours = [h for h, _ in known]
            values = [v for _, v in known]
            (line,) = axes.plot(hours, values, marker="o", markersize=3, label=queue.name)
            axes.hlines(
                queue.target_wait_minutes,
                -0.5,
                23.5,
                colors=line.get_color(),
                linestyles="dotted",
                linewidth=0.8,
            )
        axes.set_xlim(-0.5, 23.5)
        highest = max(
            max(q.target_wait_minutes, *(v for v in q.mean_wait_minutes if v is not None))
            for q in shown
        )
        axes.set_ylim(0, 1.15 * highest)
        axes.set_xticks(range(0, 24, 2), [f"{h:02d}:00" for h in range(0, 24, 2)])
        axes.set_xlabel("hour of arrival (UTC)")
        axes.set_ylabel("mean wait to service (min)")
        axes.set_title("Waits by hour (dotted: each point's target)")
        axes.legend(loc="upper left", fontsize=7, frameon=False, ncols=2)
    return _svg(figure, "briefing-waits")


@_one_at_a_time
def collections_svg(days: Sequence[CollectionsDay], currency: str) -> str | None:
    """Bars of cash posted per day and the collections KPI (30-day) as a line.

    Returns
    -------
    str or None
        SVG; ``None`` when no cash was posted and no day has a collections value.
    """
    if not any(d.cash for d in days) and all(d.collections is None for d in days):
        return None
    with mpl.rc_context(_RC):
        figure = _figure()
        axes = figure.add_subplot()
        x = range(len(days))
        axes.bar(x, [float(d.cash) for d in days], color=_OK, label=f"cash posted ({currency})")
        axes.set_ylabel(f"cash posted per day ({currency})")
        step = max(1, len(days) // 8)
        axes.set_xticks(list(x)[::step], [d.day.strftime("%d %b") for d in days][::step])
        ratio = axes.twinx()
        points = [(n, 100 * d.collections) for n, d in enumerate(days) if d.collections is not None]
        if points:
            ratio.plot(
                [n for n, _ in points],
                [v for _, v in points],
                color=_TARGET,
                marker="o",
                markersize=2,
                label="collections, 30 days (%)",
            )
        ratio.set_ylim(0, max(110.0, *(v + 10 for _, v in points)) if points else 110.0)
        ratio.set_ylabel("cash ÷ expected, 30 days (%)")
        ratio.spines["right"].set_visible(True)
        axes.set_title("Collections over the last 30 days")
        handles = axes.get_legend_handles_labels()
        more = ratio.get_legend_handles_labels()
        axes.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", frameon=False)
    return _svg(figure, "briefing-collections")

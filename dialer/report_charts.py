"""The report's charts, drawn by matplotlib and saved as inline SVG (no script, no network).

Every bar carries its number as text and every series a label, so colour never carries meaning
alone; text stays text in the SVG (`svg.fonttype = none`), small and readable by a screen reader.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import matplotlib as mpl
from matplotlib import dates
from matplotlib.figure import Figure

from dialer.gate import ZoneWait
from dialer.report_data import MIN_SHOWN, Distribution, ReportData, Step

INK = "#1f2933"
MAIN = "#2f6db5"
ASIDE = "#9aa5b1"
ALERT = "#c0392b"
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_STYLE = {
    "svg.fonttype": "none",  # text as <text>, not glyph outlines: smaller and accessible
    "svg.hashsalt": "kyzo-dialer",  # stable element ids: the same report twice is the same file
    "text.parse_math": False,  # a value with $ signs in it is text, not TeX
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": ASIDE,
    "axes.labelcolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def _styled() -> Iterator[None]:
    with mpl.rc_context(cast(Any, _STYLE)):
        yield


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # the XML prologue and doctype have no place inside HTML
    return _METADATA.sub("", text)  # an RDF block about the file itself: bytes nobody reads


def _days(moments: Sequence[datetime]) -> list[float]:
    """Datetimes as matplotlib's date numbers (days), the x values of a time axis."""
    return [float(day) for day in dates.date2num(list(moments))]  # type: ignore[no-untyped-call]


def _bars(steps: Sequence[tuple[str, int]], colors: Sequence[str], width: float = 7.0) -> str:
    """Horizontal bars, top to bottom, each labelled with its count."""
    with _styled():
        figure = Figure(figsize=(width, 0.32 * len(steps) + 0.6))
        axes = figure.add_subplot()
        labels = [label for label, _ in steps]
        values = [count for _, count in steps]
        positions = list(range(len(steps)))[::-1]
        axes.barh(positions, values, color=colors, height=0.7)
        axes.set_yticks(positions, labels)
        top = max(values, default=0) or 1
        for position, value in zip(positions, values, strict=True):
            axes.text(value + top * 0.01, position, f"{value:,}", va="center", color=INK)
        axes.set_xlim(0, top * 1.18)
        axes.xaxis.set_visible(False)
        axes.spines["bottom"].set_visible(False)
        return _svg(figure)


def funnel(main: list[Step], beside: list[Step]) -> str:
    steps = [(step.label, step.count) for step in main] + [
        (f"{step.label} (not on the path)", step.count) for step in beside
    ]
    colors = [MAIN] * len(main) + [ASIDE] * len(beside)
    return _bars(steps, colors)


def timeline(data: ReportData) -> str:
    """Calls per minute (or hour) against the configured rate; runs shaded, API pauses marked."""
    with _styled():
        figure = Figure(figsize=(7.5, 2.8))
        axes = figure.add_subplot()
        buckets = _days(data.timeline["bucket"].to_list())
        calls: list[int] = data.timeline["calls"].to_list()
        width = data.bucket_s / 86_400 * 0.9  # matplotlib's dates are in days
        axes.bar(
            buckets, calls, width=width, color=MAIN, label=f"calls placed per {data.bucket}", align="edge"
        )
        axes.axhline(
            data.rate_per_bucket,
            color=INK,
            linestyle="--",
            linewidth=1,
            label=f"configured rate: {data.rate_per_bucket:,.0f} per {data.bucket}",
        )
        for number, (start, end) in enumerate(data.run_spans, start=1):
            axes.axvspan(
                *_days([start, end]),
                color=ASIDE,
                alpha=0.15,
                label="a run" if number == 1 else None,
            )
        pauses = data.pauses["at"].to_list() if data.pauses.height else []
        for index, moment in enumerate(pauses):
            axes.axvline(
                moment,
                color=ALERT,
                linestyle=":",
                linewidth=1,
                label="pause the API asked for" if index == 0 else None,
            )
        locator = dates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        axes.set_ylabel(f"calls per {data.bucket}")
        axes.set_ylim(0, max([*calls, data.rate_per_bucket]) * 1.25 or 1)
        axes.legend(loc="upper right", fontsize=8, frameon=False)
        return _svg(figure)


def zones(waits: list[ZoneWait]) -> str:
    steps = [(f"{wait.zones} ({wait.opens})", wait.leads) for wait in waits]
    return _bars(steps, [MAIN] * len(steps), width=7.5)


def distribution(field: Distribution) -> str:
    if not field.numeric:
        steps = [*field.bars]
        if field.hidden:
            steps.append((f"other values (each fewer than {MIN_SHOWN} leads)", field.hidden))
        colors = [MAIN] * len(field.bars) + [ASIDE] * (len(steps) - len(field.bars))
        return _bars(steps, colors)
    with _styled():
        figure = Figure(figsize=(7.0, 2.4))
        axes = figure.add_subplot()
        counts, _edges, patches = axes.hist(
            field.values, bins=min(20, max(1, len(set(field.values)))), color=MAIN
        )
        for count, patch in zip(counts, cast(Any, patches), strict=True):
            if count:
                axes.text(
                    patch.get_x() + patch.get_width() / 2,
                    count,
                    f"{int(count):,}",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        axes.set_xlabel(field.name)
        axes.set_ylabel("leads")
        return _svg(figure)

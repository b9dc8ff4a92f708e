"""The campaign report: one self-contained HTML file people look at instead of reading a CSV.

Everything is inline (styles, charts as SVG; no script, font or image from anywhere), so it opens
from a file or an e-mail attachment with no network. Written atomically, 0600, like the results.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from dialer import report_charts
from dialer.checkpoint import Checkpoint
from dialer.config import Settings
from dialer.exits import meaning_of
from dialer.export import STATUS, results_plan
from dialer.leads import LeadTable
from dialer.outputs import write_text_atomic
from dialer.report_data import History, ReportData, gather
from dialer.selection import OutcomeView, Record, load_table, outcome_view
from dialer.staging import publish


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("dialer", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _trusted(svg: str) -> Markup:
    """matplotlib's SVG goes into the page as markup: it escapes every text it draws itself
    (a payload value such as `<script>` becomes `&lt;script&gt;`), which a test pins."""
    return Markup(svg)  # noqa: S704 - see the docstring


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def render(data: ReportData, *, has_hours: bool) -> str:
    funnel_alt = "Leads at each step: " + ", ".join(
        f"{s.label} {s.count:,}" for s in [*data.funnel, *data.beside]
    )
    busiest = int(data.timeline.select(pl.col("calls").max()).item() or 0) if data.timeline.height else 0
    timeline_alt = (
        f"Calls placed per {data.bucket}, at most {busiest:,}, against the configured rate of "
        f"{data.rate_per_bucket:,.0f} per {data.bucket}; {_count(len(data.run_spans), 'run')} shaded, "
        f"{_count(data.pauses.height, 'pause')} the API asked for marked"
    )
    zones_alt = "Leads waiting per time zone: " + ", ".join(
        f"{z.zones} {z.leads:,} ({z.opens})" for z in data.zones
    )
    distributions = []
    for field in data.distributions:
        if field.numeric:
            alt = f"Histogram of {field.name} over {len(field.values):,} leads"
        else:
            shown = ", ".join(f"{value} {count:,}" for value, count in field.bars)
            alt = f"{field.name}: {shown or 'no value shared by 5 leads or more'}"
        distributions.append((field.name, _trusted(report_charts.distribution(field)), alt))
    template = _environment().get_template("report.html.j2")
    return template.render(
        d=data,
        has_hours=has_hours,
        exit_meaning=meaning_of(data.last_exit) if data.last_exit is not None else "",
        funnel_svg=_trusted(report_charts.funnel(data.funnel, data.beside)),
        funnel_alt=funnel_alt,
        timeline_svg=_trusted(report_charts.timeline(data)) if data.timeline.height else "",
        timeline_alt=timeline_alt,
        zones_svg=_trusted(report_charts.zones(data.zones)) if data.zones else "",
        zones_alt=zones_alt,
        distributions=distributions,
    )


def write_report(
    settings: Settings,
    table: LeadTable,
    record: Record,
    results: pl.DataFrame,
    view: OutcomeView | None,
    history: History,
    now: datetime,
    path: Path | None = None,
) -> Path | str:
    """Render and write the report from what the caller already read (a run's end has it all).
    Returns where it is: its URL when it was uploaded to object storage."""
    target = path or settings.report_path
    data = gather(settings, table, record, results, view, history, now)
    write_text_atomic(render(data, has_hours=settings.file.calling_hours is not None), target)
    publish(settings, "report", target)
    return settings.shown("report", target) if target == settings.report_path else target


def report_campaign(settings: Settings, path: Path | None, clock: Callable[[], datetime]) -> Path | str:
    """`dialer report`: read the list and the checkpoint (read-only), write the report."""
    now = clock()
    table = load_table(settings, clock=clock)
    record, history = Record.empty(), History([], *Checkpoint.empty_timeline())
    if settings.checkpoint_path.exists():
        checkpoint = Checkpoint.open_readonly(settings.checkpoint_path)
        try:
            record = Record.read(checkpoint, settings)
            history = History(checkpoint.runs(), *checkpoint.calls_timeline())
        finally:
            checkpoint.close()
    view = outcome_view(settings, record, now, table)
    # the counts are all the report takes from the results: polars builds only the status column
    results = results_plan(table, record.states, view.columns() if view else None).select(STATUS).collect()
    return write_report(settings, table, record, results, view, history, now, path)

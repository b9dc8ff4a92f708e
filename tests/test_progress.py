"""The progress bar and the output preflight, as a person at a terminal meets them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from dialer.errors import OutputError
from dialer.outputs import check_outputs
from dialer.progress import Progress


def test_progress_bar_shows_done_placed_failed_and_rate() -> None:
    """On a TTY the bar counts leads done of the total, placed, failed and calls per second."""
    screen = io.StringIO()
    bar = Progress(total=3, enabled=True, stream=screen)

    for status in ("placed", "failed", "placed"):
        bar.advance(status)
    bar.close()

    text = screen.getvalue()
    assert "3/3" in text
    assert "placed=2" in text
    assert "failed=1" in text
    assert "cps=" in text


def test_no_progress_writes_nothing() -> None:
    """Without a TTY (or with --no-progress) the bar is a silent stand-in."""
    screen = io.StringIO()
    bar = Progress(total=3, enabled=False, stream=screen)

    bar.advance("placed")
    bar.close()

    assert screen.getvalue() == ""


def test_not_enough_disk_space_is_refused_before_any_call(tmp_path: Path) -> None:
    """An output folder without room for the results is an error naming the folder and the sizes."""
    with pytest.raises(OutputError) as caught:
        check_outputs(tmp_path / "leads.csv", [tmp_path / "out" / "results.csv"], need_bytes=1 << 60)

    assert str(tmp_path / "out") in str(caught.value)
    assert "MiB free" in str(caught.value)


def test_progress_rate_is_the_current_one_not_the_average() -> None:
    """After a fast start and a long pause, cps shows the last ten seconds (1.0), not the run (3.5)."""
    now = [1000.0]
    screen = io.StringIO()
    bar = Progress(total=200, enabled=True, stream=screen, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.01
        bar.advance("placed")
    now[0] += 20.0
    for _ in range(10):
        now[0] += 1.0
        bar.advance("placed")
    bar._bar.refresh()  # force the last postfix onto the screen
    bar.close()

    shown = re.findall(r"cps=([0-9.]+)", screen.getvalue())
    assert shown[-1] == "1.0"

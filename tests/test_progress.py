"""The progress bar and the output preflight, as a person at a terminal meets them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dialer.campaign import Progress
from dialer.errors import OutputError
from dialer.export import check_outputs


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

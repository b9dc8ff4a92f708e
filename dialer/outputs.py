"""Output files: written atomically (temp file, fsync, rename) and checked before any call."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dialer.errors import OutputError

if TYPE_CHECKING:
    import polars as pl

_MIN_FREE_BYTES = 16 * 1024 * 1024


def write_atomic(frame: pl.DataFrame, path: Path) -> None:
    """A results file: CSV or Parquet by its suffix."""
    if path.suffix.lower() == ".parquet":
        _atomically(path, frame.write_parquet)
    else:
        _atomically(path, frame.write_csv)


def write_text_atomic(text: str, path: Path) -> None:
    """A text file (the report), written the same way as the results."""
    _atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def _atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write to a temp file in the same folder, fsync, 0600, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        write(temp)
        with temp.open("rb+") as flushed:
            os.fsync(flushed.fileno())
        temp.chmod(0o600)
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OutputError(f"{path}: cannot write the file ({exc.strerror or exc})") from None


def check_outputs(
    input_path: Path, outputs: Iterable[Path], *, checkpoint: Path | None = None, need_bytes: int = 0
) -> None:
    """Before any call: every output folder can be created and written, and none is the input."""
    seen: dict[Path, Path] = {}
    source = input_path.resolve()
    for path in [*outputs, *([checkpoint] if checkpoint is not None else [])]:
        resolved = path.resolve()
        if resolved == source:
            raise OutputError(f"{path}: is the lead list itself; writing there would overwrite it")
        if resolved in seen:
            raise OutputError(f"{path}: is used for two outputs; give each its own path")
        seen[resolved] = path
        if path == checkpoint and path.suffix.lower() in (".csv", ".parquet"):
            raise OutputError(
                f"{path}: the checkpoint is a SQLite database, not a {path.suffix} file; "
                "name it .db (e.g. out/campaign.checkpoint.db)"
            )
        if path != checkpoint and path.suffix.lower() not in (".csv", ".parquet"):
            raise OutputError(f"{path}: unsupported output type '{path.suffix}'; use .csv or .parquet")
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            raise OutputError(f"{folder}: a file is in the way of the output folder") from None
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file path")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise OutputError(
                f"{folder}: cannot write in the output folder ({exc.strerror or exc})"
            ) from None
        free = shutil.disk_usage(folder).free
        if free < max(_MIN_FREE_BYTES, need_bytes):
            raise OutputError(
                f"{folder}: only {free // (1024 * 1024)} MiB free; the results need about "
                f"{max(_MIN_FREE_BYTES, need_bytes) // (1024 * 1024)} MiB. Free some space first"
            )

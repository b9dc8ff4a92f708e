"""A command's view of a campaign whose files are in object storage: local copies, for as long
as the command runs.

`staged` fetches the inputs (the list, the do-not-call list) once into a private folder (0700,
files 0600) and points the outputs there too; `publish` uploads an output the moment it is
written, whole, and deletes the local copy. The folder is removed when the command ends,
whatever happens. A local campaign passes through untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from dialer.config import Settings
from dialer.fingerprints import file_fingerprint
from dialer.locations import INPUT_ROLES, OUTPUT_ROLES, file_name
from dialer.storage import ObjectUrl, StorageOptions, fetch, look
from dialer.storage import publish as upload


@contextlib.contextmanager
def staged(settings: Settings) -> Iterator[Settings]:
    """`settings` with every URL replaced by a local path; a StorageError (exit 2) when an
    input cannot be read, before anything else happens."""
    urls = settings.remote.urls
    if not urls:
        yield settings
        return
    options = StorageOptions.of(settings.storage, os.environ)
    with tempfile.TemporaryDirectory(prefix="kyzo-dialer-") as folder:
        objects = {role: ObjectUrl.parse(url) for role, url in urls.items()}
        local = {role: Path(folder) / file_name(role, obj) for role, obj in objects.items()}
        fetched = {
            role: fetch(objects[role], options, local[role]) for role in INPUT_ROLES if role in objects
        }
        leads = settings.leads
        if "do_not_call" in fetched:
            leads = leads.model_copy(update={"do_not_call": local["do_not_call"]})
        yield replace(
            settings,
            file=settings.file.model_copy(update={"leads": leads}),
            leads_path=local.get("leads", settings.leads_path),
            results_path=local.get("results", settings.results_path),
            errors_path=local.get("errors", settings.errors_path),
            report_path=local.get("report", settings.report_path),
            fetched=fetched,
        )


def looked_at(settings: Settings) -> Settings:
    """`settings` with what the inputs in storage are now (HEADs, nothing downloaded): enough
    for `status` to tell whether the counts kept in the checkpoint still hold."""
    options = StorageOptions.of(settings.storage, os.environ)
    seen = {
        role: look(ObjectUrl.parse(settings.remote.urls[role]), options)
        for role in INPUT_ROLES
        if role in settings.remote.urls
    }
    return replace(settings, fetched=seen)


def inputs_remote(settings: Settings) -> bool:
    return any(role in settings.remote.urls for role in INPUT_ROLES)


def publish(settings: Settings, role: str, path: Path) -> None:
    """Upload the output just written at `path` when its role is in storage, then delete the
    local copy; an OutputError when the upload fails (after calls: exit 4, `export` retries)."""
    url = settings.remote.urls.get(role)
    if url is None or path != _local(settings, role):
        return
    try:
        upload(path, ObjectUrl.parse(url, writing=True), StorageOptions.of(settings.storage, os.environ))
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def input_fingerprint(settings: Settings) -> str:
    """The list's identity in the run log: its object's URL, ETag/version and size when it came
    from storage (which upload was dialed), else a digest of its bytes."""
    fetched = settings.fetched.get("leads")
    return fetched.fingerprint if fetched is not None else file_fingerprint(settings.leads_path)


def identity(settings: Settings, role: str, path: Path, digest: str | None = None) -> list[str]:
    """What an input is, for the counts' basis: the object (URL, ETag, size) when it is in
    storage, so a HEAD can tell; else where it is and a digest of its bytes (`digest`, when the
    caller has it: its `input_fingerprint`, so the file is hashed once)."""
    fetched = settings.fetched.get(role)
    if fetched is not None:
        return [fetched.fingerprint]
    return [str(path), digest or file_fingerprint(path)]


def outputs_local(settings: Settings) -> bool:
    """Whether the results, errors and report are all plain local files."""
    return not any(role in settings.remote.urls for role in OUTPUT_ROLES)


def _local(settings: Settings, role: str) -> Path:
    return {"results": settings.results_path, "errors": settings.errors_path, "report": settings.report_path}[
        role
    ]


def as_named(settings: Settings, text: str) -> str:
    """`text` (a message about a file) with each staged copy's path replaced by its URL."""
    for fetched in settings.fetched.values():
        if fetched.path is not None:
            text = text.replace(str(fetched.path), fetched.url)
    return text

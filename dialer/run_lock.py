"""The run lock: one live run per checkpoint, held by the OS (flock), so a dead holder frees it."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from dialer.checkpoint_files import lock_path
from dialer.errors import AlreadyRunning, OutputError
from dialer.timestamps import utc_now


class RunLock:
    """An OS lock (flock) next to the checkpoint: released by the kernel if its holder dies."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.path = lock_path(checkpoint)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the run lock next to the checkpoint "
                f"({exc.strerror or exc}): make the folder writable or choose another --checkpoint"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise AlreadyRunning(
                f"another run holds the checkpoint {self.checkpoint}: {holder}. "
                "Wait for it to finish (or stop it) and run again"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started_at']}"
    except (ValueError, KeyError, OSError):
        return "a process that did not record its details"


@contextmanager
def campaign_lock(checkpoint: Path) -> Iterator[Callable[[], None]]:
    """The checkpoint lock, taken as early as it can matter and no earlier.

    A run can only be live if its lock file exists: then the lock comes first, so a busy
    checkpoint says so (exit 5) before anything else can fail. Otherwise it is taken by the
    returned function once the input has been checked, so a refused run leaves nothing behind.
    """
    lock = RunLock(checkpoint)
    with ExitStack() as stack:
        if lock.path.exists():
            stack.enter_context(lock)

        def ensure() -> None:
            if not lock.held:
                stack.enter_context(lock)

        yield ensure

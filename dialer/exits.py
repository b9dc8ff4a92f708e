"""Exit codes: the contract with cron and scripts, and what each one means, in one table."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INCOMPLETE = 1
    USAGE = 2
    API = 3
    STOPPED = 4
    LOCKED = 5
    BUG = 70  # EX_SOFTWARE: a bug must not pass for "finished" (Python's own exit 1)

    @property
    def meaning(self) -> str:
        return MEANINGS[self]

    @property
    def verdict(self) -> str:
        """The headline `dialer run` prints for a run that ended with this code."""
        return VERDICTS.get(self, "finished")


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "every lead placed or skipped",
    ExitCode.INCOMPLETE: "finished; some leads failed, were rejected or are unknown",
    ExitCode.USAGE: "usage, config or input error",
    ExitCode.API: "stopped by the API's answers",
    ExitCode.STOPPED: "stopped early; resumable",
    ExitCode.LOCKED: "another run holds the checkpoint",
    ExitCode.BUG: "internal error",
}

VERDICTS: dict[ExitCode, str] = {
    ExitCode.OK: "finished: every lead placed or skipped",
    ExitCode.INCOMPLETE: "finished: some leads failed, were rejected or are unknown (see the errors file)",
    ExitCode.API: "stopped by the API's answers",
    ExitCode.STOPPED: "stopped early; resumable",
}


def meaning_of(code: int) -> str:
    """The meaning of any exit code, including ones outside the table (a signal, say)."""
    try:
        return ExitCode(code).meaning
    except ValueError:
        return "internal error"

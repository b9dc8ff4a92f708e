"""One exception root for the dialer, branched by what the caller must do.

    DialerError                 anything the CLI turns into a clean message
    ├── UserError               fix the input and run again; nothing was sent (exit 2)
    │   ├── ConfigError         the campaign file or the environment is wrong
    │   ├── LeadsError          the lead list cannot be read or mapped
    │   ├── CheckpointError     the checkpoint is foreign, corrupt or from another campaign
    │   └── OutputError         an output file or folder cannot be written
    ├── ResultsNotWritten       calls went out but the files could not be written (exit 4)
    ├── CheckpointUnwritable    the checkpoint stopped taking writes mid-run (exit 4)
    ├── CheckpointWriteFailed   a write to the checkpoint failed: disk full, I/O error (exit 4)
    └── AlreadyRunning          another run holds the checkpoint (exit 5)

A refused state change (`lead_state.IllegalMove`) is not a DialerError: it is a bug, exit 70,
except `ClaimRefused`, which the dispatcher handles by skipping the lead.
API answers are not exceptions: `client.classify` turns each into an `Outcome` whose action
says what to do (placed, failed, unknown, retry, stop), and the dispatcher acts on it.
"""

from __future__ import annotations

from dialer.exits import ExitCode


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, at most 200 characters: for a one-sentence error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


class DialerError(Exception):
    """Root of every error the CLI reports without a traceback."""

    exit_code = ExitCode.INCOMPLETE


class UserError(DialerError):
    """Bad config, input or environment: nothing was sent; fix and rerun."""

    exit_code = ExitCode.USAGE


class ConfigError(UserError):
    """The campaign config or an environment variable it needs is wrong."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: the campaign config has {_count(problems)}:\n{lines}")


class LeadsError(UserError):
    """The lead list cannot be read or does not have the mapped columns."""


class CheckpointError(UserError):
    """The checkpoint file is unusable for this campaign; it was left untouched."""


class CheckpointWriteFailed(DialerError):
    """A write to the checkpoint failed (a full disk, an I/O error): the input is fine and a rerun
    after the fix carries on, so it is exit 4, "run me again later", never 2."""

    exit_code = ExitCode.STOPPED

    @classmethod
    def at(cls, where: object, cause: BaseException) -> CheckpointWriteFailed:
        return cls(f"{where}: cannot write the checkpoint ({cause})")


class OutputError(UserError):
    """An output path cannot be written; checked before any call is sent."""


class ResultsNotWritten(DialerError):
    """Calls were sent and recorded, but the results could not be written: `dialer export` later."""

    exit_code = ExitCode.STOPPED


class CheckpointUnwritable(DialerError):
    """The checkpoint could not be written mid-run (a full disk): nothing more was sent; rerun."""

    exit_code = ExitCode.STOPPED


class AlreadyRunning(DialerError):
    """Another process holds the checkpoint lock."""

    exit_code = ExitCode.LOCKED


def _count(problems: list[str]) -> str:
    return "1 problem" if len(problems) == 1 else f"{len(problems)} problems"

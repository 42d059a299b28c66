"""Errors a user can cause or meet: the library raises them, the CLI prints them as one line (never a
traceback) and exits with their `exit_code`.

    MirrorError             anything else that stops a command (exit 1): a missing mirror...
    ├── WriterBusy          another writer holds the data directory's lock (exit 1)
    ├── BadInput            a bad option, argument, identifier or input file (exit 2)
    ├── NotFound            what was asked for is not in the mirror (exit 3)
    ├── UpstreamUnavailable data.gouv.fr or the INSEE API cannot be reached, refuses or keeps failing (exit 1)
    ├── IntegrityError      data that fails validation: a stock refused, a malformed upstream answer (exit 1)
    ├── MassUpdate          INSEE reprocessed the register in bulk: reload a stock instead of paging (exit 3)
    └── OutputClosed        the reader of the output went away (`| head`): no message, exit 141
"""


class MirrorError(Exception):
    """A failure with a message meant for the user; `exit_code` is the process exit status of the CLI."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class WriterBusy(MirrorError):
    """Another writer (load, update, sync, store) holds DATA_DIR/.lock: try again once it is done."""


class BadInput(MirrorError):
    """A bad option, argument, identifier or input file: fix the command and run it again."""

    exit_code = 2


class NotFound(MirrorError):
    """The identifier or object asked for is not in the mirror."""

    exit_code = 3


class UpstreamUnavailable(MirrorError):
    """data.gouv.fr or the INSEE API cannot be reached, refuses the request, or keeps failing."""


class IntegrityError(MirrorError):
    """Data that fails validation (a stock file, an upstream answer, the state file): nothing was applied."""


class MassUpdate(MirrorError):
    """INSEE ran a mass update after the last sync: the mirror waits for the next monthly stock."""

    exit_code = 3


class OutputClosed(MirrorError):
    """The reader of the output (standard output piped to `head`, a named pipe) closed it. The CLI stops
    quietly, as a standard Unix tool killed by SIGPIPE: no message, exit 141 (128 + SIGPIPE, what a shell
    reports for `cat big | head -1`). What was written before stays written; nothing is left behind."""

    exit_code = 141


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its class name if it has none): what a
    one-line error or warning quotes of a library's multi-line message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__

"""Errors a user can cause or meet: the CLI prints them as one line, never as a traceback."""


class MirrorError(Exception):
    """A failure with a message meant for the user (bad input, missing file, upstream down...).

    `exit_code` is the process exit status the CLI uses for it.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

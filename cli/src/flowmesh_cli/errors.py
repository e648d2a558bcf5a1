"""What can stop a command, each with its exit code (docs/cli.md lists them).

- 0: done (``watch``, ``run --watch``: the run succeeded);
- 1: the gateway refused or failed the request (an API error: 400, 409, 422, 5xx ...);
- 2: usage: bad arguments, no configuration, a file that cannot be read or parsed;
- 3: the gateway cannot be reached (or a run's event stream was lost for good);
- 4: what the command names does not exist (404);
- 5: the credential was refused (401) or may not do this (403);
- 6: the run ended, but not succeeded (failed, cancelled, timed out);
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

from flowmesh_client.errors import (
    ConfigError,
    ConnectionFailed,
    FlowmeshError,
    Forbidden,
    NotFound,
    Unauthorized,
)

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_FOUND = 4
EXIT_REFUSED = 5
EXIT_RUN_FAILED = 6
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """flowmesh could not do what was asked."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str | None = None, *, code: int | None = None) -> None:
        super().__init__(message or self.__doc__)
        if code is not None:
            self.exit_code = code

    @property
    def message(self) -> str:
        return " ".join(str(self).split())


def exit_code(exc: FlowmeshError) -> int:
    """The exit code of a client error."""
    match exc:
        case ConfigError():
            return EXIT_USAGE
        case ConnectionFailed():
            return EXIT_UNREACHABLE
        case NotFound():
            return EXIT_NOT_FOUND
        case Unauthorized() | Forbidden():
            return EXIT_REFUSED
    return EXIT_API_ERROR

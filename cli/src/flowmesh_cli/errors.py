"""What can stop a command, each with its exit code (the README lists them).

- 0: done (``watch``: the run succeeded);
- 1: the run ended failed, cancelled or timed out;
- 2: the command cannot work as given: usage, configuration, credentials (401/403) or a
  request the gateway refused;
- 3: what the command names does not exist (404);
- 4: the gateway could not be reached, failed (5xx), or the stream was lost for good;
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """flowmesh could not do what was asked."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)

    @property
    def message(self) -> str:
        """One line, whatever the gateway put in its detail."""
        return " ".join(str(self).split())


class ConfigError(CliError):
    """No usable gateway URL, tenant or API key."""


class Refused(CliError):
    """The gateway refused the request."""


class NotFound(CliError):
    """The gateway does not know it."""

    exit_code = EXIT_NOT_FOUND


class Unavailable(CliError):
    """The gateway could not be reached or did not answer properly."""

    exit_code = EXIT_UNAVAILABLE


class Transient(Unavailable):
    """The gateway is busy or restarting (429, 502, 503, 504): worth asking again."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

"""One error type for every problem a user can fix: it names the problem and the fix."""
from __future__ import annotations


class BenchError(Exception):
    """A clear, user-facing failure. ``fix`` says what to do about it; the CLI prints both and exits non-zero."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class ConfigError(BenchError):
    """Unknown names, bad options, contradictory settings."""


class DataError(BenchError):
    """A sample, manifest or file is missing, corrupt or inconsistent."""


class WeightsError(BenchError):
    """Model or metric weights are absent, truncated, or do not match their expected hash."""


class MethodError(BenchError):
    """A method failed or produced invalid output (wrong shape, NaN, too few frames)."""


def os_reason(exc: BaseException) -> str:
    """An OS error as words, without the raw errno number: ``Permission denied`` rather than
    ``[Errno 13] Permission denied: '/x'`` (the path is named by the message that uses this)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc)

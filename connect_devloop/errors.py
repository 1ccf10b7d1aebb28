"""Errors that reach the user.

Every error the daemon reports carries a one-line ``message`` (what went wrong) and an optional
``hint`` (what to do about it). Lower-level exceptions (aiohttp, OSError, json) are mapped to these
at the boundary with ``raise ... from exc``; only ``cli.py`` turns them into output and exit codes.

    DevloopError
    ├── ConfigError            connect-dev.toml is missing or wrong (exit 2)
    ├── DescriptorError        atlassian-connect.json cannot be parsed or fails validation
    ├── CredentialsError       no password/API token could be found for a host
    │   └── ForgeLoginError        only one of FORGE_EMAIL and FORGE_API_TOKEN is set
    ├── UpmError               the host's UPM REST API refused or failed a call
    │   ├── AuthenticationError    401/403: wrong credentials or not an admin
    │   ├── DevModeOffError        Cloud development mode is off
    │   ├── UploadsDisabledError   Data Center started without upm.plugin.upload.enabled
    │   ├── InstallFailedError     the install task ended with an error (subCode, errorMessage)
    │   └── HostUnreachableError   the host could not be reached, or timed out
    ├── TunnelError            the tunnel could not be opened or died
    ├── ForgeError             the Forge CLI failed or could not run (the forge registrar)
    └── LedgerError            the ledger file cannot be read or written
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "CredentialsError",
    "DescriptorError",
    "DevModeOffError",
    "DevloopError",
    "ForgeError",
    "ForgeLoginError",
    "HostUnreachableError",
    "InstallFailedError",
    "LedgerError",
    "Problem",
    "TunnelError",
    "UploadsDisabledError",
    "UpmError",
]


class DevloopError(Exception):
    """Base of every error connect-devloop reports to a user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(DevloopError):
    """The config file is missing, not valid TOML, or has a wrong or unknown key."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.file = file
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.key:
            where = f"{where}: {self.key}" if where else self.key
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a descriptor: where it is and what is wrong.

    ``path`` is a JSON path such as ``$.lifecycle.installed`` ("$" for the whole document);
    ``line``/``column`` are 1-based positions in the file when they are known.
    """

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    severity: str = "error"  # "error" blocks an install; "warning" is only reported

    def location(self, file: str | None = None) -> str:
        parts = [file] if file else []
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def format(self, file: str | None = None) -> str:
        where = self.location(file)
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.path}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
        }


class DescriptorError(DevloopError):
    """The descriptor cannot be read, is not JSON, or fails validation."""

    def __init__(self, file: str, problems: list[Problem], hint: str | None = None) -> None:
        first = problems[0].format(file) if problems else file
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}", hint)
        self.file = file
        self.problems = problems


class CredentialsError(DevloopError):
    """No password or API token could be found for a host."""


class ForgeLoginError(CredentialsError):
    """The environment holds half a Forge CLI login: ``FORGE_EMAIL`` without ``FORGE_API_TOKEN``
    or the other way round. The Forge CLI refuses that, so we do too, before running it."""


class UpmError(DevloopError):
    """A UPM REST call failed. ``status`` is the HTTP status, ``sub_code`` UPM's ``subCode``."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        sub_code: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.sub_code = sub_code


class AuthenticationError(UpmError):
    """401 or 403 from UPM: wrong username/API token, or the user is not a site admin."""


class DevModeOffError(UpmError):
    """Cloud "development mode" is off, so private descriptor-URL installs are refused."""


class UploadsDisabledError(UpmError):
    """Data Center refuses installs from a URL unless started with uploads enabled."""


class InstallFailedError(UpmError):
    """The install task ended with an error reported by the host."""


class HostUnreachableError(UpmError):
    """The host did not answer (connection refused, DNS, TLS, timeout). ``retry`` is False
    when trying again at once cannot help (an install the host accepted but did not finish:
    it waits on the add-on, not on the network)."""

    def __init__(self, message: str, hint: str | None = None, *, retry: bool = True) -> None:
        super().__init__(message, hint)
        self.retry = retry


class TunnelError(DevloopError):
    """The tunnel could not be opened, or closed unexpectedly."""


class LedgerError(DevloopError):
    """The ledger of installs cannot be read or written."""


class ForgeError(DevloopError):
    """A step of the ``forge`` registrar failed: the manifest, or the Forge CLI (its message
    is the CLI's own ``Error:`` line; the hint says what to do)."""

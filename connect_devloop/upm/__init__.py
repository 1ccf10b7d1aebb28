"""Async client for the Universal Plugin Manager (UPM) REST API of Jira and Confluence.

``UpmClient`` installs an add-on from its descriptor URL, follows the install task to its end,
reads and uninstalls apps, and checks Cloud's development mode, exactly as PROTOCOL.md §2 tells.
The aiohttp session is injected and owned by the caller.

Every failure leaves this package as an ``UpmError`` subclass whose ``message`` says what the host
refused, naming the host and the username, and whose ``hint`` says what to do about it. The
password never reaches a message, a hint or a log record: the Authorization header is built once
and kept in a ``Secret``, and response bodies quoted in messages are scrubbed of it.

Each module builds only on those above it, so there are no import cycles:

    replies   the reply, the host, and pure helpers that read UPM's JSON documents
    explain   one ``explain_*`` function per failure, turning a reply into an ``UpmError``
    client    ``UpmClient``: requests, tokens and install-task polling
"""

from __future__ import annotations

from .client import UpmClient
from .explain import explain_failed_task, explain_unauthorized
from .replies import (
    REMOTE_INSTALL_TYPE,
    URI_INSTALL_TYPE,
    Failure,
    HostIdentity,
    PluginInfo,
    Reply,
    ping_after_seconds,
)

__all__ = [
    "REMOTE_INSTALL_TYPE",
    "URI_INSTALL_TYPE",
    "Failure",
    "HostIdentity",
    "PluginInfo",
    "Reply",
    "UpmClient",
    "explain_failed_task",
    "explain_unauthorized",
    "ping_after_seconds",
]

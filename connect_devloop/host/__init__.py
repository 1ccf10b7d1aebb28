"""The emulated Connect host (``connect-dev host``): a Jira or Confluence site's UPM REST API and
Connect install flow on a real loopback server, faithful to PROTOCOL.md §2-§4.

    async with run_host(context_path="/wiki", product="confluence") as host:
        ...  # install through host.base_url with admin/admin, then assert on host.record

Where PROTOCOL.md is silent the modules say "the emulator's choice" next to what was chosen.
"""

from __future__ import annotations

from .install import InstallTask
from .keys import SigningKey
from .lifecycle import AddonResponse, Installation
from .record import (
    CallbackRecord,
    FailedInstall,
    HostRecord,
    InstallPost,
    InstallRecord,
    SentRequest,
    UninstallRecord,
    UpmCall,
    WebhookDelivery,
)
from .settings import HostSettings
from .site import EmulatedHost, run_host, serve_forever

__all__ = [
    "AddonResponse",
    "CallbackRecord",
    "EmulatedHost",
    "FailedInstall",
    "HostRecord",
    "HostSettings",
    "InstallPost",
    "InstallRecord",
    "InstallTask",
    "Installation",
    "SentRequest",
    "SigningKey",
    "UninstallRecord",
    "UpmCall",
    "WebhookDelivery",
    "run_host",
    "serve_forever",
]

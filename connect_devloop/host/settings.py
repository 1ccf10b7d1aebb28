"""How an emulated site is set up: product, context path, users, and the switches tests flip."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_FAILURE_MESSAGE", "REINSTALL_SECRETS", "HostSettings", "normalise_context_path"]

PRODUCTS = ("jira", "confluence")
FLAVOURS = ("cloud", "server")
# What a re-install in place carries: "new" (Cloud now: every install event issues a new
# sharedSecret) or "keep" (older Connect: an upgrade keeps the secret).
REINSTALL_SECRETS = ("new", "keep")
# What the UPM REST calls failed by `fail_next` say when no message was given.
DEFAULT_FAILURE_MESSAGE = "Emulated failure (fail_next)"


@dataclass
class HostSettings:
    """One emulated Jira or Confluence site.

    ``flavour="cloud"`` has Cloud's development-mode setting; ``"server"`` (Server/Data Center)
    has none. ``uploads_enabled=False`` is a Data Center started without
    ``-Dupm.plugin.upload.enabled=true``. ``require_signed_install`` refuses descriptors without
    ``apiMigrations.signed-install`` as Cloud now does. ``descriptor_installs_refused`` fails
    every descriptor-URL install as Cloud does since 2026 (FORGE.md §1), whatever the dev mode;
    the site's Forge side (``forge.py``) still installs. ``forge_deploy_delay_ms`` is how long
    each emulated ``forge deploy`` takes; ``forge_reject_credentials`` makes the emulated Forge
    refuse the CLI's login, as for a revoked API token. ``reinstall_secret`` is what a
    re-install of an installed add-on carries: ``"new"``, a new ``sharedSecret`` as Cloud issues
    on every install event, or ``"keep"``, the secret it has, as older Connect did on an
    upgrade. An install after an uninstall always gets a new secret.
    """

    port: int = 0
    bind: str = "127.0.0.1"
    context_path: str = "/jira"
    product: str = "jira"
    flavour: str = "cloud"
    # repr=False: a logged or printed settings object must not show passwords.
    users: dict[str, str] = field(default_factory=lambda: {"admin": "admin"}, repr=False)
    non_admins: dict[str, str] = field(default_factory=dict, repr=False)
    dev_mode: bool = True
    uploads_enabled: bool = True
    ping_after_ms: int = 100
    install_delay_ms: int = 0
    callback_timeout_s: float = 10.0
    descriptor_timeout_s: float = 10.0
    require_signed_install: bool = False
    descriptor_installs_refused: bool = False
    forge_deploy_delay_ms: int = 0
    forge_reject_credentials: bool = False
    reinstall_secret: str = "new"
    client_key: str = ""  # "" = a new random one per site

    def __post_init__(self) -> None:
        self.context_path = normalise_context_path(self.context_path)
        if self.product not in PRODUCTS:
            raise ValueError(f"product must be one of {', '.join(PRODUCTS)}, not {self.product!r}")
        if self.flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, not {self.flavour!r}")
        if self.reinstall_secret not in REINSTALL_SECRETS:
            raise ValueError(
                f"reinstall_secret must be one of {', '.join(REINSTALL_SECRETS)}, "
                f"not {self.reinstall_secret!r}"
            )
        if not self.users:
            raise ValueError("at least one admin user is needed")


def normalise_context_path(path: str) -> str:
    """``"jira/"`` → ``"/jira"``; ``"/"`` and ``""`` → ``""`` (the site at the root)."""
    stripped = path.strip().strip("/")
    return f"/{stripped}" if stripped else ""

"""Turn what a host answered into the ``UpmError`` a user sees: one function per situation.

Each ``explain_*`` names the host and the username, quotes what the host said and gives a hint
saying what to do about it, so a new kind of failure is a new small function rather than another
branch in a long chain. Bodies quoted here come from ``Reply.text``, already scrubbed of the
password by the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import aiohttp

from ..errors import (
    AuthenticationError,
    DevModeOffError,
    HostUnreachableError,
    InstallFailedError,
    UploadsDisabledError,
    UpmError,
)
from .replies import (
    INVALID_TOKEN_SUB_CODE,
    REDIRECT_STATUSES,
    REMOTE_INSTALL_TYPE,
    URI_INSTALL_TYPE,
    Failure,
    HostIdentity,
    InstallProgress,
    Reply,
    error_fields,
    excerpt,
    host_said,
    path_of,
)

__all__ = [
    "CallbackRejectedError",
    "DescriptorInstallsRefusedError",
    "callback_status_advice",
    "connect_failure",
    "explain_addon_unreachable",
    "explain_callback_rejected",
    "explain_captcha",
    "explain_descriptor_installs_refused",
    "explain_descriptor_unreachable",
    "explain_dev_mode_off",
    "explain_dev_mode_refusal",
    "explain_failed_task",
    "explain_forbidden",
    "explain_forbidden_by_dev_mode",
    "explain_install_rejection",
    "explain_install_timeout",
    "explain_invalid_uri",
    "explain_known_failure",
    "explain_missing_upm",
    "explain_not_json",
    "explain_redirect",
    "explain_request_timeout",
    "explain_task_poll_failure",
    "explain_unauthorized",
    "explain_unexpected_reply",
    "explain_uninstall_refused",
    "explain_unnamed_completion",
    "explain_unreachable",
    "explain_uploads_disabled",
    "explain_uploads_refusal",
]

CALLBACK_STATUS_PATTERN: Final = re.compile(r"returned HTTP response code (\d{3})", re.IGNORECASE)
UPLOADS_DISABLED_PATTERN: Final = re.compile(
    r"upload\w*\b.*\bdisabled|disabled\b.*\bupload", re.IGNORECASE
)
# Cloud's 2026 refusal (FORGE.md §1); its subCode is not known, so the message decides.
DESCRIPTOR_INSTALLS_REFUSED_PATTERN: Final = re.compile(
    r"no longer supports? installing private apps using an app descriptor URL", re.IGNORECASE
)
DOWNLOAD_FAILED_PATTERN: Final = re.compile(
    r"download|could not (?:fetch|retrieve|read)|unable to (?:fetch|retrieve)", re.IGNORECASE
)

API_TOKEN_URL: Final = "https://id.atlassian.com/manage-profile/security/api-tokens"
CONNECT_END_OF_SUPPORT_NOTE: Final = (
    "Note: since 2026 Atlassian Cloud has been withdrawing descriptor-URL installs of private "
    "Connect apps (Connect end of support), so a Cloud site may refuse the install even with "
    "development mode on; a local SDK or Data Center host does not."
)


def explain_unauthorized(reply: Reply, host: HostIdentity) -> AuthenticationError:
    said = host_said(reply)
    hints = {
        "cloud": "Atlassian Cloud needs the account's e-mail address as username and an API "
        f"token as password (create one at {API_TOKEN_URL}); the account password does not "
        "work." + ("" if "@" in host.username else f" {host.username!r} is not an e-mail address."),
        "local": "Local SDK hosts (atlas-run) use admin/admin unless you changed them; check "
        "username and password in the [[hosts]] entry.",
        "server": "Check the username and password of this Server/Data Center account. "
        "Atlassian Cloud needs the account e-mail plus an API token from id.atlassian.com "
        "(account passwords do not work); local SDK hosts use admin/admin.",
    }
    return AuthenticationError(
        f"{host.base_url} rejected the login of {host.username!r}: wrong username or "
        f"password/API token (HTTP 401{': ' + said if said else ''})",
        hint=hints[host.kind],
        status=reply.status,
    )


def explain_captcha(reply: Reply, host: HostIdentity) -> AuthenticationError | None:
    """Jira/Confluence demand a CAPTCHA after failed logins and then refuse even the right one."""
    reason = reply.header("X-Authentication-Denied-Reason") or ""
    login_reason = reply.header("X-Seraph-LoginReason") or ""
    if "captcha" not in reason.lower() and "AUTHENTICATION_DENIED" not in login_reason:
        return None
    return AuthenticationError(
        f"{host.base_url} refuses to log in {host.username!r} until a CAPTCHA is solved "
        f"(too many failed logins, HTTP {reply.status})",
        hint=f"Log in once as {host.username} in a browser at {host.base_url} and solve the "
        "CAPTCHA, after fixing the password/API token that failed.",
        status=reply.status,
    )


def explain_uploads_disabled(failure: Failure, host: HostIdentity) -> UploadsDisabledError | None:
    sub_code = (failure.sub_code or "").lower()
    by_code = "upload" in sub_code and "disabled" in sub_code
    by_message = bool(
        failure.error_message and UPLOADS_DISABLED_PATTERN.search(failure.error_message)
    )
    if not (by_code or by_message):
        return None
    return UploadsDisabledError(
        f"{host.base_url} does not allow installing apps from a URL: app uploads are disabled "
        f"({failure.described})",
        hint="Data Center disables app uploads by default. Start the product with the JVM "
        "system property -Dupm.plugin.upload.enabled=true (e.g. JVM_SUPPORT_RECOMMENDED_ARGS in "
        'setenv.sh, or atlas-run --jvmargs "-Dupm.plugin.upload.enabled=true") and restart it.',
        status=failure.status,
        sub_code=failure.sub_code,
    )


def explain_forbidden(reply: Reply, host: HostIdentity, *, doing: str) -> UpmError:
    captcha = explain_captcha(reply, host)
    if captcha is not None:
        return captcha
    failure = error_fields(reply.json_or_none())
    uploads = explain_uploads_disabled(Failure(failure.sub_code, failure.error_message, 403), host)
    if uploads is not None:
        return uploads
    said = host_said(reply)
    return AuthenticationError(
        f"{host.username!r} is not allowed to manage apps on {host.base_url} "
        f"(HTTP 403 while {doing}{': ' + said if said else ''})",
        hint="Installing apps needs an administrator: a site admin (Jira/Confluence "
        "administrator) on Cloud, a system administrator on Server/Data Center. Log in as "
        f"{host.username} at {host.manage_apps_url}: if 'Manage apps' does not open, use an "
        "admin account or have this one made an admin.",
        status=403,
        sub_code=failure.sub_code,
    )


def explain_dev_mode_off(host: HostIdentity, failure: Failure | None) -> DevModeOffError:
    why = f" ({failure.described})" if failure else ""
    return DevModeOffError(
        f"development mode is off on {host.base_url}, so it refuses to install an app from a "
        f"descriptor URL{why}",
        hint="As an admin open Jira/Confluence Settings → Apps → Manage apps "
        f"({host.manage_apps_url}), click Settings at the bottom, tick "
        f'"Enable development mode" and Apply. {CONNECT_END_OF_SUPPORT_NOTE}',
        status=failure.status if failure else None,
        sub_code=failure.sub_code if failure else None,
    )


def explain_dev_mode_refusal(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    if not (failure.sub_code or "").endswith("not.from.marketplace"):
        return None
    return explain_dev_mode_off(host, failure)


class DescriptorInstallsRefusedError(InstallFailedError):
    """The host no longer installs private apps from a descriptor URL, whatever its development
    mode: Atlassian Cloud since 2026 (FORGE.md §1). Only the Forge path installs there now."""


def explain_descriptor_installs_refused(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    # Before the dev-mode refusal: Cloud may send this with the same subCode, and turning
    # development mode on cannot help here.
    if not DESCRIPTOR_INSTALLS_REFUSED_PATTERN.search(failure.error_message or ""):
        return None
    return DescriptorInstallsRefusedError(
        f"{host.base_url} no longer installs private apps from a descriptor URL "
        f"({failure.described})",
        hint="Atlassian Cloud stopped installing private Connect apps from a descriptor URL in "
        "2026, even in development mode; what still installs is a Connect app registered on "
        "Forge. Run `connect-dev forge convert` to write a manifest.yml from your descriptor, "
        'then set registrar = "forge" (with site and product) on this [[hosts]] entry in '
        "connect-dev.toml: connect-dev then deploys and installs it with the Forge CLI.",
        status=failure.status,
        sub_code=failure.sub_code,
    )


def explain_uploads_refusal(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    return explain_uploads_disabled(failure, host)


class CallbackRejectedError(InstallFailedError):
    """The host failed the install because the add-on did not answer ``installed`` with 2xx.

    ``callback_status`` is the status the host got (None when it did not say), and
    ``host_url`` the host: with them the proxy, which may have given that status itself,
    can tell what really happened (``explain_addon_unreachable``)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        callback_status: int | None,
        host_url: str,
        status: int | None = None,
        sub_code: str | None = None,
    ) -> None:
        super().__init__(message, hint, status=status, sub_code=sub_code)
        self.callback_status = callback_status
        self.host_url = host_url


# What a proxy or tunnel answers when the server behind it does not.
GATEWAY_STATUSES: Final = (502, 503, 504)


def explain_addon_unreachable(
    error: CallbackRejectedError, addon_url: str, reason: str
) -> InstallFailedError:
    """The install failed because the add-on server did not answer the installed callback
    (the proxy answered it with 502 for the add-on): say that, not "rejected with 502"."""
    return InstallFailedError(
        f"your add-on at {addon_url} did not answer the installed callback from "
        f"{error.host_url}: {reason}",
        hint=f"Start your add-on server so that it listens at {addon_url}, or fix [addon] url "
        "in connect-dev.toml; then save the descriptor (or press r in the dashboard) to install "
        "again.",
        status=error.status,
        sub_code=error.sub_code,
    )


def explain_callback_rejected(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    match = CALLBACK_STATUS_PATTERN.search(failure.error_message or "")
    by_code = (failure.sub_code or "").endswith("remote.host.bad.response")
    if match is None and not by_code:
        return None
    callback_status = int(match.group(1)) if match else None
    with_status = f" with HTTP {callback_status}" if callback_status else ""
    return CallbackRejectedError(
        f"the add-on rejected the installed callback{with_status} from {host.base_url} "
        f"(host said: {failure.described})",
        hint="The host POSTed the lifecycle.installed callback to your add-on and counts only "
        "200, 201 or 204 as success. Check your server's lifecycle.installed handler and its "
        "logs: it must verify the install's JWT (RS256 signed install, or HS256 with the "
        "previous sharedSecret on a legacy reinstall), store clientKey and sharedSecret, and "
        "answer 2xx." + callback_status_advice(callback_status),
        callback_status=callback_status,
        host_url=host.base_url,
        status=failure.status,
        sub_code=failure.sub_code,
    )


def callback_status_advice(callback_status: int | None) -> str:
    if callback_status in (401, 403):
        return (
            " A 401/403 nearly always means the JWT check failed: the audience must be your "
            "public baseUrl and the install keys must be fetched from the host's key server."
        )
    if callback_status == 404:
        return " A 404 means the lifecycle.installed path in the descriptor does not exist."
    if callback_status in (502, 503, 504):
        return " A 502/503/504 usually comes from the tunnel or proxy: is the add-on running?"
    if callback_status is not None and callback_status >= 500:
        return " A 5xx means the handler crashed: its stack trace is in your server's log."
    return ""


def explain_descriptor_unreachable(
    failure: Failure, host: HostIdentity, plugin_uri: str
) -> UpmError | None:
    sub_code = failure.sub_code or ""
    by_code = sub_code.endswith(("file.not.found", "response.exception"))
    by_message = bool(
        failure.error_message and DOWNLOAD_FAILED_PATTERN.search(failure.error_message)
    )
    if not (by_code or by_message):
        return None
    return InstallFailedError(
        f"{host.base_url} could not fetch the descriptor from {plugin_uri} ({failure.described})",
        hint="The host downloads the descriptor itself, so the URL must be reachable from the "
        "host, not just from your machine. Atlassian Cloud only fetches from ports 80, 443 or "
        "8080 on the public internet: localhost and LAN URLs need a tunnel (tunnel.provider = "
        f'"ngrok" or "ssh"). Check the tunnel is up and that {plugin_uri} opens from outside.',
        status=failure.status,
        sub_code=failure.sub_code,
    )


def explain_invalid_uri(failure: Failure, host: HostIdentity, plugin_uri: str) -> UpmError | None:
    if not (failure.sub_code or "").endswith(("invalid.relative.uri", "invalid.uri.syntax")):
        return None
    return InstallFailedError(
        f"{host.base_url} rejected the descriptor URL {plugin_uri!r}: not an absolute, "
        f"well-formed URL ({failure.described})",
        hint="The pluginUri must be an absolute http(s) URL such as "
        "https://<tunnel host>/atlassian-connect.json; check tunnel.public_url.",
        status=failure.status,
        sub_code=failure.sub_code,
    )


# Order matters: a callback rejection message mentions the add-on host, not a download.
KNOWN_INSTALL_FAILURES: Final[
    tuple[Callable[[Failure, HostIdentity, str], UpmError | None], ...]
] = (
    explain_descriptor_installs_refused,
    explain_dev_mode_refusal,
    explain_uploads_refusal,
    explain_callback_rejected,
    explain_descriptor_unreachable,
    explain_invalid_uri,
)


def explain_known_failure(failure: Failure, host: HostIdentity, plugin_uri: str) -> UpmError | None:
    for explain in KNOWN_INSTALL_FAILURES:
        error = explain(failure, host, plugin_uri)
        if error is not None:
            return error
    return None


def explain_failed_task(failure: Failure, host: HostIdentity, plugin_uri: str) -> UpmError:
    known = explain_known_failure(failure, host, plugin_uri)
    if known is not None:
        return known
    return InstallFailedError(
        f"{host.base_url} failed to install {plugin_uri}: {failure.described}",
        hint="This is the host's own explanation. Run `connect-dev validate` on the descriptor, "
        "and look for the full stack trace in the host's log (atlassian-jira.log / "
        "atlassian-confluence.log on Server and local SDK hosts).",
        status=failure.status,
        sub_code=failure.sub_code,
    )


def explain_install_rejection(reply: Reply, host: HostIdentity, plugin_uri: str) -> UpmError:
    """The POST that should start an install was refused outright."""
    fields = error_fields(reply.json_or_none())
    failure = Failure(fields.sub_code, fields.error_message, reply.status)
    known = explain_known_failure(failure, host, plugin_uri)
    if known is not None:
        return known
    if reply.status == 403 and failure.sub_code == INVALID_TOKEN_SUB_CODE:
        return UpmError(
            f"{host.base_url} refused two fresh UPM tokens in a row for {host.username!r}",
            hint="Tokens are single use and expire after about 5 minutes, and a new one was "
            "fetched for each attempt. A proxy in front of the host may be caching "
            f"GET {host.upm_url} or dropping the ?token= query parameter.",
            status=403,
            sub_code=failure.sub_code,
        )
    if reply.status == 415:
        return UpmError(
            f"{host.base_url} accepts neither {REMOTE_INSTALL_TYPE} nor {URI_INSTALL_TYPE} "
            f"for installing from a URL (HTTP 415: {host_said(reply) or 'no details'})",
            hint="This UPM is too old or too new for installs from a descriptor URL; install "
            f"the app by hand at {host.manage_apps_url} to see what it expects.",
            status=415,
            sub_code=failure.sub_code,
        )
    if reply.status == 404:
        return explain_missing_upm(reply, host)
    return explain_unexpected_reply(reply, host, doing=f"starting the install of {plugin_uri}")


def explain_task_poll_failure(reply: Reply, host: HostIdentity, plugin_uri: str) -> UpmError:
    if reply.status == 404:
        return UpmError(
            f"the install task {reply.url} of {plugin_uri} vanished from {host.base_url} "
            "(HTTP 404)",
            hint=f"The host may have restarted; check {host.manage_apps_url} and install again.",
            status=404,
        )
    return explain_unexpected_reply(reply, host, doing=f"following the install of {plugin_uri}")


def explain_unnamed_completion(reply: Reply, host: HostIdentity, plugin_uri: str) -> UpmError:
    return UpmError(
        f"{host.base_url} reports the install of {plugin_uri} done without an error, but "
        f"never says which app it installed: {excerpt(reply.text)}",
        hint=f"The app is probably installed; check {host.manage_apps_url}.",
        status=reply.status,
    )


def explain_uninstall_refused(reply: Reply, host: HostIdentity, key: str) -> UpmError:
    fields = error_fields(reply.json_or_none())
    if not (fields.sub_code or fields.error_message):
        return explain_forbidden(reply, host, doing=f"uninstalling {key}")
    return UpmError(
        f"{host.base_url} refused to uninstall {key}: {fields.described}",
        hint=f"System and required apps cannot be uninstalled; check {key} at "
        f"{host.manage_apps_url}.",
        status=reply.status,
        sub_code=fields.sub_code,
    )


def explain_missing_upm(reply: Reply, host: HostIdentity) -> UpmError:
    return UpmError(
        f"no UPM REST API at {host.upm_url} (HTTP {reply.status})",
        hint="Check the host url and its context path: Jira Cloud is the site root "
        "(https://SITE.atlassian.net), Confluence Cloud is /wiki "
        "(https://SITE.atlassian.net/wiki), local SDK hosts are http://localhost:2990/jira "
        "and http://localhost:1990/confluence.",
        status=reply.status,
    )


def explain_redirect(reply: Reply, host: HostIdentity) -> UpmError:
    location = reply.header("Location") or "(no Location)"
    return UpmError(
        f"{host.base_url} redirected {reply.method} {reply.url} to {location} "
        f"(HTTP {reply.status})",
        hint="Use the URL it redirects to as the host url (https instead of http, or the right "
        "context path). A redirect to a login page means the host or an SSO proxy does not "
        "accept Basic authentication for REST calls.",
        status=reply.status,
    )


def explain_forbidden_by_dev_mode(reply: Reply, host: HostIdentity) -> UpmError | None:
    failure = error_fields(reply.json_or_none())
    refused = explain_descriptor_installs_refused(
        Failure(failure.sub_code, failure.error_message, 403), host, ""
    )
    if refused is not None:
        return refused
    if (failure.sub_code or "").endswith("not.from.marketplace"):
        return explain_dev_mode_off(host, Failure(failure.sub_code, failure.error_message, 403))
    return None


def explain_unexpected_reply(reply: Reply, host: HostIdentity, *, doing: str) -> UpmError:
    if reply.status in REDIRECT_STATUSES:
        return explain_redirect(reply, host)
    if reply.status == 401:
        return explain_captcha(reply, host) or explain_unauthorized(reply, host)
    if reply.status == 403:
        return explain_forbidden_by_dev_mode(reply, host) or explain_forbidden(
            reply, host, doing=doing
        )
    fields = error_fields(reply.json_or_none())
    if reply.status >= 500:
        return UpmError(
            f"{host.base_url} failed with HTTP {reply.status} while {doing} "
            f"({reply.method} {path_of(reply.url)}): {excerpt(reply.text)}",
            hint="The host had an internal error; try again, and check the host's log if it "
            "keeps happening.",
            status=reply.status,
            sub_code=fields.sub_code,
        )
    return UpmError(
        f"{host.base_url} answered HTTP {reply.status} while {doing} "
        f"({reply.method} {path_of(reply.url)}): {excerpt(reply.text)}",
        hint="This is not an answer UPM gives; check that the host url points at Jira or "
        "Confluence and not at a proxy in front of it.",
        status=reply.status,
        sub_code=fields.sub_code,
    )


def explain_not_json(reply: Reply, host: HostIdentity) -> UpmError:
    content_type = reply.header("Content-Type") or "no content type"
    return UpmError(
        f"{host.base_url} answered {reply.method} {path_of(reply.url)} with HTTP {reply.status} "
        f"and {content_type} instead of JSON: {excerpt(reply.text)}",
        hint="A login or error page instead of UPM's JSON means the URL reaches a proxy, an SSO "
        "page or the wrong context path rather than the product's REST API.",
        status=reply.status,
    )


def explain_unreachable(
    exc: aiohttp.ClientError, host: HostIdentity, method: str, url: str
) -> HostUnreachableError:
    where = f"{method} {url}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return HostUnreachableError(
            f"the TLS certificate of {host.base_url} is not trusted ({where})",
            hint="The certificate is self-signed, expired or for another name. Use the name the "
            "certificate was issued for, or add its CA to the system trust store "
            "(SSL_CERT_FILE).",
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return HostUnreachableError(
            f"TLS handshake with {host.base_url} failed ({where}): {exc}",
            hint="Check the URL's scheme: local SDK hosts speak plain http "
            "(http://localhost:2990/jira), Cloud sites only https.",
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return HostUnreachableError(
            f"the host name of {host.base_url} does not resolve ({where})",
            hint="Check the spelling of the host url, and your network or VPN.",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return HostUnreachableError(
            f"cannot connect to {host.base_url}: {connect_failure(exc)} ({where})",
            hint="Is the product running and listening there? A local SDK host (atlas-run) "
            "takes minutes to start; Jira listens on 2990 and Confluence on 1990 by default.",
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return HostUnreachableError(
            f"cannot request {exc.url}: not a valid URL (host {host.base_url})",
            hint="Check the host url in the config.",
        )
    return HostUnreachableError(
        f"the connection to {host.base_url} failed during {where}: "
        f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}",
        hint="The host or a proxy in front of it dropped the connection; try again, and check "
        "the host is healthy.",
    )


def connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or "connection failed"


def explain_request_timeout(
    host: HostIdentity, method: str, url: str, seconds: float
) -> HostUnreachableError:
    return HostUnreachableError(
        f"{host.base_url} did not answer {method} {url} within {seconds:g} s",
        hint="The host is overloaded, still starting, or a firewall drops the traffic; a "
        "starting local SDK host answers after a few minutes.",
    )


def explain_install_timeout(
    host: HostIdentity, plugin_uri: str, seconds: float, progress: InstallProgress
) -> HostUnreachableError:
    if not progress.submitted:
        return HostUnreachableError(
            f"{host.base_url} did not accept the install of {plugin_uri} within {seconds:g} s",
            hint="The host answers too slowly; check it is healthy, then save the descriptor "
            "again to retry.",
            retry=False,
        )
    state = f" (last state: {progress.state})" if progress.state else ""
    if progress.state == "downloading":
        stuck = (
            f"It is still fetching {plugin_uri}: check the tunnel is up and serves the "
            "descriptor quickly."
        )
    else:
        stuck = (
            "The host waits for your add-on's lifecycle.installed handler: check it answers "
            "promptly (the proxy log shows the callback) and that the tunnel is up."
        )
    return HostUnreachableError(
        f"the host is still installing {plugin_uri} after {seconds:g} s{state} "
        f"({host.base_url}, task {progress.task_url or 'unknown'})",
        hint=f"{stuck} The install may still finish: check {host.manage_apps_url}. "
        "Save the descriptor again to retry.",
        retry=False,
    )

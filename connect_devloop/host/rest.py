"""The emulated site's REST API, for calls from installed apps (Connect JWT) and from users
(Basic auth or the site's session): a realistic subset of Jira Cloud's and Confluence Cloud's,
on the product data of ``product.py``, at Cloud's paths under the site's base URL.

Jira (``/rest/api/{2,3,latest}/...``): ``myself``, ``serverInfo``, ``project`` (list, search,
get, create), ``issue`` (create, get, edit, delete, transitions), issue comments, ``search``
(GET and POST, the JQL subset of ``rest_jql``) and ``search/jql``. Confluence
(``/rest/api/...``): ``content`` (list, create, get, update, delete), ``space`` (list, get),
``user/current``. Both: app properties, ``/rest/atlassian-connect/1/addons/{key}/properties``.

Each route states the scope an app needs (the Connect scope whitelists: ``GET`` is ``READ``,
creating and editing ``WRITE``, deleting ``DELETE``, project administration
``PROJECT_ADMIN``); ``rest_auth`` checks callers and scopes, and every call is recorded with its
verdict in ``HostRecord.rest_calls``. Errors have the shape of the API that was called: Jira's
``{"errorMessages": [...], "errors": {...}}``, Confluence's ``{"statusCode", "data", "message",
"reason"}``, Connect's ``{"status-code", "message"}`` for app properties.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from . import rest_json
from .lifecycle import SERVER_VERSIONS
from .product import TRANSITIONS, Issue, Page, ProductError, User
from .record import RestCall
from .rest_auth import (
    NOT_AUTHENTICATED,
    Caller,
    Refusal,
    Verdict,
    authenticate,
    check_scope,
    declared_scopes,
    session_routes,
)
from .rest_jql import JqlError, parse_jql

if TYPE_CHECKING:
    from .product import Product
    from .types import Host

__all__ = ["Call", "Endpoint", "RestError", "error_response", "rest_routes"]

logger = logging.getLogger(__name__)

JIRA_VERSIONS: Final = {"2": 2, "3": 3, "latest": 2}
MAX_RESULTS: Final = 100
DEFAULT_MAX_RESULTS: Final = 50
CONFLUENCE_DEFAULT_LIMIT: Final = 25
# Connect's limits on app properties (AddonPropertyAO, AddonPropertyServiceImpl).
MAX_PROPERTY_KEY_LENGTH: Final = 127
MAX_PROPERTY_VALUE_BYTES: Final = 32 * 1024
PROJECT_KEY: Final = re.compile(r"[A-Z][A-Z0-9]{1,9}")
NOT_APP: Final = "Access to this resource must be authenticated as an add-on."
NO_ISSUE: Final = "Issue does not exist or you do not have permission to see it."
NOT_ADF: Final = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


class RestError(Exception):
    """A 4xx answer from a handler, in the error shape of its API."""

    def __init__(
        self, status: int, message: str | None = None, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message or errors)
        self.status = status
        self.message = message
        self.errors = errors or {}


@dataclass
class Call:
    """One accepted REST call, as a handler sees it."""

    host: Host
    request: web.Request
    caller: Caller
    version: int  # Jira's REST version: 2 or 3 (1 elsewhere)

    @property
    def product(self) -> Product:
        return self.host.product

    @property
    def actor(self) -> User:
        assert self.caller.user is not None  # routes without a user are refused before
        return self.caller.user

    @property
    def show_email(self) -> bool:
        """Cloud shows e-mail addresses to users, and to apps with ACCESS_EMAIL_ADDRESSES."""
        if self.caller.app_key is None:
            return True
        installation = self.host.installations.get(self.caller.app_key)
        return installation is not None and "ACCESS_EMAIL_ADDRESSES" in declared_scopes(
            installation
        )

    @property
    def base(self) -> str:
        return self.host.base_url

    def param(self, name: str) -> str | None:
        return self.request.query.get(name)

    def int_param(self, name: str, default: int) -> int:
        value = self.request.query.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError as exc:
            raise RestError(
                400, f"The value '{value}' is not valid for the parameter '{name}'."
            ) from exc

    async def json_body(self) -> Any:
        text = await self.request.text()
        if not text.strip():
            raise RestError(400, "No content to map to Object due to end of input")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RestError(400, f"The request body is not valid JSON: {exc}") from exc

    async def json_object(self) -> dict[str, Any]:
        body = await self.json_body()
        if not isinstance(body, dict):
            raise RestError(400, "The request body must be a JSON object.")
        return body


Handler = Callable[[Call], Awaitable[web.Response]]


@dataclass(frozen=True)
class Endpoint:
    """One route: ``path`` is relative to the base URL; ``scope`` is what an app needs
    (``None``: any app, as for app properties); ``style`` picks the error shape."""

    method: str
    path: str
    scope: str | None
    handler: Handler
    style: str  # "jira", "confluence" or "connect"
    version: int = 1
    anonymous: bool = False


def rest_routes(host: Host) -> list[web.RouteDef]:
    """The routes of the site's REST API, for its product, plus the session login."""
    endpoints = jira_endpoints() if host.settings.product == "jira" else confluence_endpoints()
    endpoints += property_endpoints()
    context = host.settings.context_path
    routes = [
        web.route(endpoint.method, context + endpoint.path, _guarded(host, endpoint))
        for endpoint in endpoints
    ]
    return routes + session_routes(host)


def _guarded(host: Host, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        outcome = authenticate(host, request)
        if isinstance(outcome, Refusal):
            return _refuse(host, request, endpoint, outcome, None)
        caller = outcome
        if caller.anonymous and not endpoint.anonymous:
            message = NOT_APP if endpoint.style == "connect" else NOT_AUTHENTICATED
            verdict = Verdict(
                accepted=False,
                reason="not authenticated",
                message=message,
                explanation="No credentials: an app signs its call with a JWT, a user sends "
                "Basic auth or the site's session cookie.",
            )
            refusal = Refusal(401, message, verdict, {"WWW-Authenticate": 'JWT realm="connect"'})
            return _refuse(host, request, endpoint, refusal, caller)
        scope_refusal = check_scope(host, caller, request, endpoint.scope)
        if scope_refusal is not None:
            return _refuse(host, request, endpoint, scope_refusal, caller)
        try:
            response = await endpoint.handler(Call(host, request, caller, endpoint.version))
        except RestError as exc:
            response = error_response(endpoint.style, exc.status, exc.message, exc.errors)
        _record(host, request, response.status, caller.verdict, caller)
        return response

    return handle


def _refuse(
    host: Host,
    request: web.Request,
    endpoint: Endpoint,
    refusal: Refusal,
    caller: Caller | None,
) -> web.Response:
    verdict = refusal.verdict
    logger.info(
        "refused %s %s (%s): %s", request.method, request.path, verdict.reason, verdict.explanation
    )
    _record(host, request, refusal.status, verdict, caller)
    response = error_response(endpoint.style, refusal.status, refusal.message, None)
    response.headers.update(refusal.headers)
    return response


def _record(
    host: Host, request: web.Request, status: int, verdict: Verdict, caller: Caller | None
) -> None:
    # The token could be replayed until it expires: the record keeps everything but it.
    query = "&".join(
        "jwt=…" if part.partition("=")[0] == "jwt" else part
        for part in request.rel_url.raw_query_string.split("&")
        if part
    )
    user = caller.user if caller is not None else None
    host.record.add(
        RestCall(
            method=request.method,
            path=request.rel_url.raw_path,
            query=query,
            status=status,
            auth=verdict.auth,
            app_key=verdict.app_key,
            user=user.account_id if user else None,
            verdict=verdict.to_dict(),
        )
    )


def error_response(
    style: str, status: int, message: str | None, errors: dict[str, str] | None
) -> web.Response:
    """An error in the shape of the API: Jira, Confluence or Connect (app properties)."""
    if style == "jira":
        body: dict[str, Any] = {
            "errorMessages": [message] if message else [],
            "errors": errors or {},
        }
    elif style == "confluence":
        text = message or "; ".join(f"{k}: {v}" for k, v in (errors or {}).items())
        body = {
            "statusCode": status,
            "data": {
                "authorized": status not in (401, 403),
                "valid": status != 400,
                "errors": [{"message": {"key": v, "args": []}} for v in (errors or {}).values()],
                "successful": False,
            },
            "message": text,
            "reason": HTTPStatus(status).phrase,
        }
    else:
        body = {"status-code": status, "message": message or ""}
    return web.json_response(body, status=status)


# --- Jira -------------------------------------------------------------------------------------


def jira_endpoints() -> list[Endpoint]:
    routes: list[tuple[str, str, str | None, Handler, bool]] = [
        ("GET", "/myself", "READ", _myself, False),
        ("GET", "/serverInfo", "READ", _server_info, True),
        ("GET", "/project", "READ", _projects, False),
        ("POST", "/project", "PROJECT_ADMIN", _create_project, False),
        ("GET", "/project/search", "READ", _project_search, False),
        ("GET", "/project/{projectIdOrKey}", "READ", _project, False),
        ("POST", "/issue", "WRITE", _create_issue, False),
        ("GET", "/issue/{issueIdOrKey}", "READ", _get_issue, False),
        ("PUT", "/issue/{issueIdOrKey}", "WRITE", _edit_issue, False),
        ("DELETE", "/issue/{issueIdOrKey}", "DELETE", _delete_issue, False),
        ("GET", "/issue/{issueIdOrKey}/transitions", "READ", _transitions, False),
        ("POST", "/issue/{issueIdOrKey}/transitions", "WRITE", _transition, False),
        ("GET", "/issue/{issueIdOrKey}/comment", "READ", _comments, False),
        ("POST", "/issue/{issueIdOrKey}/comment", "WRITE", _add_comment, False),
        ("GET", "/issue/{issueIdOrKey}/comment/{id}", "READ", _get_comment, False),
        ("PUT", "/issue/{issueIdOrKey}/comment/{id}", "WRITE", _edit_comment, False),
        ("DELETE", "/issue/{issueIdOrKey}/comment/{id}", "DELETE", _delete_comment, False),
        ("GET", "/search", "READ", _search, False),
        ("POST", "/search", "READ", _search, False),
        ("GET", "/search/jql", "READ", _search_jql, False),
        ("POST", "/search/jql", "READ", _search_jql, False),
    ]
    return [
        Endpoint(method, f"/rest/api/{name}{path}", scope, handler, "jira", version, anonymous)
        for name, version in JIRA_VERSIONS.items()
        for method, path, scope, handler, anonymous in routes
    ]


async def _myself(call: Call) -> web.Response:
    shown = rest_json.jira_user(call.base, call.actor, show_email=call.show_email)
    shown.update(
        {
            "locale": "en_US",
            "groups": {"size": 1, "items": []},
            "applicationRoles": {"size": 1, "items": []},
            "expand": "groups,applicationRoles",
        }
    )
    return web.json_response(shown)


async def _server_info(call: Call) -> web.Response:
    cloud = call.host.settings.flavour == "cloud"
    build, version = SERVER_VERSIONS[("jira", call.host.settings.flavour)]
    shown_version = version if cloud else build
    numbers = [int(part) for part in re.findall(r"\d+", shown_version)[:3]]
    return web.json_response(
        {
            "baseUrl": call.base,
            "version": shown_version,
            "versionNumbers": numbers,
            "deploymentType": "Cloud" if cloud else "Server",
            "buildNumber": int(build) if build.isdigit() else int("".join(map(str, numbers))),
            "buildDate": "2024-01-01T00:00:00.000+0000",
            "serverTime": rest_json.jira_timestamp(call.product.now_ms()),
            "scmInfo": "0000000000000000000000000000000000000000",
            "serverTitle": "Jira",
            "defaultLocale": {"locale": "en_US"},
        }
    )


async def _projects(call: Call) -> web.Response:
    return web.json_response(
        [
            rest_json.project(call.product, item, show_email=call.show_email)
            for item in call.product.projects.values()
        ]
    )


async def _project_search(call: Call) -> web.Response:
    start = max(call.int_param("startAt", 0), 0)
    limit = min(max(call.int_param("maxResults", DEFAULT_MAX_RESULTS), 0), MAX_RESULTS)
    wanted = (call.param("query") or "").lower()
    found = [
        item
        for item in call.product.projects.values()
        if wanted in item.key.lower() or wanted in item.name.lower()
    ]
    page = found[start : start + limit]
    return web.json_response(
        {
            "self": str(call.request.url),
            "maxResults": limit,
            "startAt": start,
            "total": len(found),
            "isLast": start + len(page) >= len(found),
            "values": [rest_json.project(call.product, item) for item in page],
        }
    )


async def _project(call: Call) -> web.Response:
    wanted = call.request.match_info["projectIdOrKey"]
    item = call.product.project(wanted)
    if item is None:
        kind = "id" if wanted.isdigit() else "key"
        raise RestError(404, f"No project could be found with {kind} '{wanted}'.")
    return web.json_response(rest_json.project(call.product, item, show_email=call.show_email))


async def _create_project(call: Call) -> web.Response:
    if call.caller.app_key is None and not call.caller.admin:
        raise RestError(
            403, "You must have global administrator rights in order to modify projects."
        )
    body = await call.json_object()
    errors: dict[str, str] = {}
    key, name = body.get("key"), body.get("name")
    if not isinstance(key, str) or not PROJECT_KEY.fullmatch(key):
        errors["projectKey"] = (
            "Project keys must start with an uppercase letter, followed by one or more "
            "uppercase alphanumeric characters."
        )
    if not isinstance(name, str) or not name.strip():
        errors["projectName"] = "You must specify a valid project name."
    lead_id = body.get("leadAccountId")
    lead = call.product.user(lead_id) if isinstance(lead_id, str) else call.actor
    if lead is None or (lead.account_type != "atlassian" and isinstance(lead_id, str)):
        errors["projectLead"] = "You must specify a valid project lead."
    if errors:
        raise RestError(400, errors=errors)
    assert isinstance(key, str)
    assert isinstance(name, str)
    assert lead is not None
    try:
        item = call.product.create_project(key, name, lead, call.actor)
    except ProductError as exc:
        raise RestError(400, errors={exc.field or "projectKey": exc.message}) from exc
    return web.json_response(
        {"self": f"{call.base}/rest/api/2/project/{item.id}", "id": int(item.id), "key": item.key},
        status=201,
    )


def _issue_of(call: Call) -> Issue:
    issue = call.product.issue(call.request.match_info["issueIdOrKey"])
    if issue is None:
        raise RestError(404, NO_ISSUE)
    return issue


def _selected_fields(values: Iterable[str], default: Iterable[str]) -> set[str]:
    """Jira's ``fields`` selection: names, ``*all``, ``*navigable``, ``-name`` to leave out."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    included = [name for name in names if not name.startswith("-")]
    selected: set[str] = set() if included else set(default)
    for name in included:
        if name == "*all":
            selected |= set(rest_json.ISSUE_FIELDS)
        elif name == "*navigable":
            selected |= rest_json.NAVIGABLE_FIELDS
        else:
            selected.add(name)
    for name in names:
        if name.startswith("-"):
            selected.discard(name[1:])
    return selected


async def _get_issue(call: Call) -> web.Response:
    issue = _issue_of(call)
    fields = _selected_fields(call.request.query.getall("fields", []), rest_json.ISSUE_FIELDS)
    return web.json_response(
        rest_json.issue(
            call.product, issue, version=call.version, fields=fields, show_email=call.show_email
        )
    )


def _text_value(call: Call, value: Any, field_name: str, errors: dict[str, str]) -> str | None:
    """A text field as the version writes it: a string in v2, an ADF document in v3."""
    if value is None:
        return None
    if call.version >= 3:
        if not isinstance(value, dict) or value.get("type") != "doc":
            errors[field_name] = NOT_ADF
            return None
        try:
            return rest_json.adf_text(value)
        except ValueError:
            errors[field_name] = NOT_ADF
            return None
    if not isinstance(value, str):
        errors[field_name] = "Operation value must be a string"
        return None
    return value


def _user_ref(call: Call, value: Any, field_name: str, errors: dict[str, str]) -> User | None:
    if value is None:
        return None
    account_id = value.get("accountId") if isinstance(value, dict) else None
    user = call.product.user(account_id) if isinstance(account_id, str) else None
    if user is None:
        errors[field_name] = "Specified user does not exist or you do not have required permissions"
    return user


def _labels(value: Any, errors: dict[str, str]) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors["labels"] = "Operation value must be an array of strings"
        return None
    if any(" " in label for label in value):
        errors["labels"] = "The label can't contain spaces."
        return None
    return list(value)


def _reference(items: dict[str, Any], value: Any) -> Any:
    """An entity referred to as ``{"id": ...}``, ``{"key": ...}`` or ``{"name": ...}``."""
    if not isinstance(value, dict):
        return None
    for name in ("id", "key", "name"):
        wanted = value.get(name)
        if isinstance(wanted, str | int):
            text = str(wanted)
            for item in items.values():
                if (
                    str(getattr(item, "id", "")) == text
                    or getattr(item, "key", None) == text.upper()
                ):
                    return item
                if name == "name" and getattr(item, "name", "").lower() == text.lower():
                    return item
    return None


async def _create_issue(call: Call) -> web.Response:
    body = await call.json_object()
    fields = body.get("fields")
    if not isinstance(fields, dict):
        fields = {}
    errors: dict[str, str] = {}
    project = _reference(call.product.projects, fields.get("project"))
    if project is None:
        errors["project"] = "Specify a valid project ID or key"
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors["summary"] = "You must specify a summary of the issue."
    kind = _reference(call.product.issue_types, fields.get("issuetype"))
    if fields.get("issuetype") is None:
        errors["issuetype"] = "Specify an issue type"
    elif kind is None:
        errors["issuetype"] = "The issue type selected is invalid."
    description = _text_value(call, fields.get("description"), "description", errors)
    labels = _labels(fields["labels"], errors) if "labels" in fields else []
    assignee = _user_ref(call, fields.get("assignee"), "assignee", errors)
    for name in fields:
        if name not in (
            "project",
            "summary",
            "issuetype",
            "description",
            "labels",
            "assignee",
            "reporter",
            "priority",
        ):
            errors[name] = (
                f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            )
    if errors:
        raise RestError(400, errors=errors)
    issue = call.product.create_issue(
        project,
        str(summary),
        kind,
        call.actor,
        description=description,
        labels=labels or [],
        assignee=assignee,
    )
    return web.json_response(
        {
            "id": issue.id,
            "key": issue.key,
            "self": f"{call.base}/rest/api/{call.version}/issue/{issue.id}",
        },
        status=201,
    )


EDITABLE: Final = ("summary", "description", "labels", "assignee", "issuetype")


async def _edit_issue(call: Call) -> web.Response:
    issue = _issue_of(call)
    body = await call.json_object()
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    fields = body.get("fields") or {}
    update = body.get("update") or {}
    if not isinstance(fields, dict) or not isinstance(update, dict):
        raise RestError(400, "Can not deserialize the request body: fields and update are objects.")
    for name, value in fields.items():
        _edit_value(call, issue, name, value, changes, errors)
    for name, operations in update.items():
        if not isinstance(operations, list):
            errors[name] = 'Operations must be a list of {"set"|"add"|"remove": value}.'
            continue
        for operation in operations:
            if not isinstance(operation, dict) or len(operation) != 1:
                errors[name] = 'Each operation is one of {"set"|"add"|"remove": value}.'
                continue
            verb, value = next(iter(operation.items()))
            if verb == "set":
                _edit_value(call, issue, name, value, changes, errors)
            elif verb in ("add", "remove") and name == "labels" and isinstance(value, str):
                labels = list(changes.get("labels", issue.labels))
                if verb == "add" and value not in labels:
                    labels.append(value)
                elif verb == "remove" and value in labels:
                    labels.remove(value)
                changes["labels"] = labels
            else:
                errors[name] = f"Field '{name}' does not support the '{verb}' operation."
    if errors:
        raise RestError(400, errors=errors)
    call.product.edit_issue(issue, changes, call.actor)
    if call.param("returnIssue") == "true":
        return web.json_response(
            rest_json.issue(call.product, issue, version=call.version, show_email=call.show_email)
        )
    return web.Response(status=204)


def _edit_value(
    call: Call, issue: Issue, name: str, value: Any, changes: dict[str, Any], errors: dict[str, str]
) -> None:
    if name not in EDITABLE:
        errors[name] = (
            f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
        )
    elif name == "summary":
        if not isinstance(value, str) or not value.strip():
            errors[name] = "You must specify a summary of the issue."
        else:
            changes[name] = value
    elif name == "description":
        text = _text_value(call, value, name, errors)
        if name not in errors:
            changes[name] = text
    elif name == "labels":
        labels = _labels(value, errors)
        if labels is not None:
            changes[name] = labels
    elif name == "assignee":
        user = _user_ref(call, value, name, errors)
        if name not in errors:
            changes[name] = user
    else:
        kind = _reference(call.product.issue_types, value)
        if kind is None:
            errors[name] = "The issue type selected is invalid."
        else:
            changes[name] = kind


async def _delete_issue(call: Call) -> web.Response:
    call.product.delete_issue(_issue_of(call), call.actor)
    return web.Response(status=204)


def _transition_json(call: Call, transition_id: str) -> dict[str, Any]:
    status_name = TRANSITIONS[transition_id]
    return {
        "id": transition_id,
        "name": status_name,
        "to": rest_json.status(call.product, status_name),
        "hasScreen": False,
        "isGlobal": True,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
        "isLooped": False,
    }


async def _transitions(call: Call) -> web.Response:
    issue = _issue_of(call)
    available = [tid for tid, status in TRANSITIONS.items() if status != issue.status]
    return web.json_response(
        {"expand": "transitions", "transitions": [_transition_json(call, tid) for tid in available]}
    )


async def _transition(call: Call) -> web.Response:
    issue = _issue_of(call)
    body = await call.json_object()
    transition = body.get("transition")
    wanted = str(transition.get("id")) if isinstance(transition, dict) else None
    if wanted not in TRANSITIONS or TRANSITIONS[wanted] == issue.status:
        raise RestError(400, f"Transition id '{wanted}' is not valid for this issue.")
    call.product.edit_issue(issue, {"status": TRANSITIONS[wanted]}, call.actor)
    return web.Response(status=204)


async def _comments(call: Call) -> web.Response:
    issue = _issue_of(call)
    start = max(call.int_param("startAt", 0), 0)
    limit = min(max(call.int_param("maxResults", 5000), 0), 5000)
    page = issue.comments[start : start + limit]
    return web.json_response(
        {
            "startAt": start,
            "maxResults": limit,
            "total": len(issue.comments),
            "comments": [
                rest_json.comment(
                    call.product, issue, c, version=call.version, show_email=call.show_email
                )
                for c in page
            ],
        }
    )


def _comment_of(call: Call, issue: Issue) -> Any:
    wanted = call.request.match_info["id"]
    comment = next((c for c in issue.comments if c.id == wanted), None)
    if comment is None:
        raise RestError(404, f"Can not find a comment for the id: {wanted}.")
    return comment


async def _comment_body(call: Call) -> str:
    body = await call.json_object()
    errors: dict[str, str] = {}
    text = _text_value(call, body.get("body"), "comment", errors)
    if errors:
        raise RestError(400, errors=errors)
    if not text or not text.strip():
        raise RestError(400, errors={"comment": "Comment body can not be empty!"})
    return text


async def _add_comment(call: Call) -> web.Response:
    issue = _issue_of(call)
    comment = call.product.add_comment(issue, await _comment_body(call), call.actor)
    return web.json_response(
        rest_json.comment(
            call.product, issue, comment, version=call.version, show_email=call.show_email
        ),
        status=201,
    )


async def _get_comment(call: Call) -> web.Response:
    issue = _issue_of(call)
    comment = _comment_of(call, issue)
    return web.json_response(
        rest_json.comment(
            call.product, issue, comment, version=call.version, show_email=call.show_email
        )
    )


async def _edit_comment(call: Call) -> web.Response:
    issue = _issue_of(call)
    comment = _comment_of(call, issue)
    call.product.edit_comment(issue, comment, await _comment_body(call), call.actor)
    return web.json_response(
        rest_json.comment(
            call.product, issue, comment, version=call.version, show_email=call.show_email
        )
    )


async def _delete_comment(call: Call) -> web.Response:
    issue = _issue_of(call)
    call.product.delete_comment(issue, _comment_of(call, issue), call.actor)
    return web.Response(status=204)


async def _search_parameters(call: Call) -> tuple[str, int, int, list[str] | None, str | None]:
    """``(jql, startAt, maxResults, fields or None, nextPageToken)`` from the query or body."""
    if call.request.method == "POST":
        body = await call.json_object()
        jql = body.get("jql") or ""
        fields = body.get("fields")
        if fields is not None and not (
            isinstance(fields, list) and all(isinstance(f, str) for f in fields)
        ):
            raise RestError(400, "fields must be an array of field names.")
        try:
            start = int(body.get("startAt", 0))
            limit = int(body.get("maxResults", DEFAULT_MAX_RESULTS))
        except (TypeError, ValueError) as exc:
            raise RestError(400, "startAt and maxResults must be numbers.") from exc
        token = body.get("nextPageToken")
        if not isinstance(jql, str):
            raise RestError(400, "jql must be a string.")
        return jql, start, limit, fields, token if isinstance(token, str) else None
    listed = call.request.query.getall("fields", [])
    return (
        call.param("jql") or "",
        call.int_param("startAt", 0),
        call.int_param("maxResults", DEFAULT_MAX_RESULTS),
        listed or None,
        call.param("nextPageToken"),
    )


def _found(call: Call, jql: str) -> list[Issue]:
    try:
        query = parse_jql(jql, call.product, call.actor.account_id)
    except JqlError as exc:
        raise RestError(400, exc.message) from exc
    return query.sort([issue for issue in call.product.issues.values() if query.matches(issue)])


async def _search(call: Call) -> web.Response:
    jql, start, limit, fields, _ = await _search_parameters(call)
    start, limit = max(start, 0), min(max(limit, 0), MAX_RESULTS)
    found = _found(call, jql)
    selected = _selected_fields(fields or [], rest_json.NAVIGABLE_FIELDS)
    return web.json_response(
        {
            "expand": "schema,names",
            "startAt": start,
            "maxResults": limit,
            "total": len(found),
            "issues": [
                rest_json.issue(
                    call.product,
                    issue,
                    version=call.version,
                    fields=selected,
                    show_email=call.show_email,
                )
                for issue in found[start : start + limit]
            ],
        }
    )


async def _search_jql(call: Call) -> web.Response:
    """The enhanced search: pages by ``nextPageToken``; only ``id`` unless ``fields`` asks."""
    jql, _, limit, fields, token = await _search_parameters(call)
    limit = min(max(limit, 0), 5000)
    start = int(token) if token and token.isdigit() else 0
    found = _found(call, jql)
    page = found[start : start + limit]
    if fields:
        selected = _selected_fields(fields, rest_json.NAVIGABLE_FIELDS)
        issues = [
            rest_json.issue(
                call.product,
                issue,
                version=call.version,
                fields=selected,
                show_email=call.show_email,
            )
            for issue in page
        ]
    else:
        issues = [{"id": issue.id} for issue in page]
    answer: dict[str, Any] = {"issues": issues, "isLast": start + len(page) >= len(found)}
    if not answer["isLast"]:
        answer["nextPageToken"] = str(start + len(page))
    return web.json_response(answer)


# --- Confluence -------------------------------------------------------------------------------


def confluence_endpoints() -> list[Endpoint]:
    routes: list[tuple[str, str, str | None, Handler]] = [
        ("GET", "/rest/api/content", "READ", _contents),
        ("POST", "/rest/api/content", "WRITE", _create_content),
        ("GET", "/rest/api/content/{id}", "READ", _get_content),
        ("PUT", "/rest/api/content/{id}", "WRITE", _update_content),
        ("DELETE", "/rest/api/content/{id}", "DELETE", _delete_content),
        ("GET", "/rest/api/space", "READ", _spaces),
        ("GET", "/rest/api/space/{spaceKey}", "READ", _space),
        ("GET", "/rest/api/user/current", "READ", _current_user),
    ]
    return [
        Endpoint(method, path, scope, handler, "confluence")
        for method, path, scope, handler in routes
    ]


def _expansions(call: Call, default: frozenset[str]) -> frozenset[str]:
    asked = {
        name.strip()
        for value in call.request.query.getall("expand", [])
        for name in value.split(",")
    }
    return default | frozenset(name for name in asked if name)


def _content_json(call: Call, page: Page, expand: frozenset[str]) -> dict[str, Any]:
    return rest_json.content(call.product, page, expand, show_email=call.show_email)


def _no_content(page_id: str) -> RestError:
    return RestError(404, f"No content found with id: ContentId{{id={page_id}}}")


def _page_of(call: Call, *, status: str | None = None) -> Page:
    page_id = call.request.match_info["id"]
    page = call.product.page(page_id)
    wanted = status or call.param("status") or "current"
    if page is None or (wanted != "any" and page.status != wanted):
        raise _no_content(page_id)
    return page


async def _contents(call: Call) -> web.Response:
    kind = call.param("type") or "page"
    space_key, title = call.param("spaceKey"), call.param("title")
    status = call.param("status") or "current"
    start = max(call.int_param("start", 0), 0)
    limit = min(max(call.int_param("limit", CONFLUENCE_DEFAULT_LIMIT), 0), 200)
    found = [
        page
        for page in sorted(call.product.pages.values(), key=lambda p: int(p.id))
        if page.type == kind
        and (space_key is None or page.space_key == space_key)
        and (title is None or page.title == title)
        and (status == "any" or page.status == status)
    ]
    expand = _expansions(call, frozenset())
    results = [_content_json(call, page, expand) for page in found[start : start + limit]]
    links: dict[str, str] = {
        "base": call.base,
        "context": call.host.settings.context_path,
        "self": f"{call.base}/rest/api/content",
    }
    if start + limit < len(found):
        links["next"] = f"/rest/api/content?limit={limit}&start={start + limit}"
    return web.json_response(
        {"results": results, "start": start, "limit": limit, "size": len(results), "_links": links}
    )


def _storage_body(body: dict[str, Any], required: bool) -> str | None:
    value = body.get("body")
    if value is None and not required:
        return None
    storage = value.get("storage") if isinstance(value, dict) else None
    if storage is None and not required:
        return None
    if not isinstance(storage, dict) or not isinstance(storage.get("value"), str):
        raise RestError(
            400, 'The body must be {"storage": {"value": "...", "representation": "storage"}}.'
        )
    if storage.get("representation", "storage") != "storage":
        raise RestError(
            400,
            f"The emulated site stores only the 'storage' representation, not "
            f"{storage.get('representation')!r}.",
        )
    return str(storage["value"])


async def _create_content(call: Call) -> web.Response:
    body = await call.json_object()
    kind = body.get("type")
    if kind != "page":
        raise RestError(
            400, f"The emulated site creates content of type 'page' only, not {kind!r}."
        )
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise RestError(400, "Title cannot be empty")
    space_ref = body.get("space")
    space_key = space_ref.get("key") if isinstance(space_ref, dict) else None
    if not isinstance(space_key, str):
        raise RestError(400, "Space key is required to create content")
    space = call.product.spaces.get(space_key)
    if space is None:
        raise RestError(404, f"No space with key : {space_key}")
    parent: Page | None = None
    ancestors = body.get("ancestors") or []
    if isinstance(ancestors, list) and ancestors:
        last = ancestors[-1]
        parent_id = str(last.get("id")) if isinstance(last, dict) else ""
        parent = call.product.page(parent_id)
        if parent is None or parent.space_key != space.key:
            raise RestError(
                400, f"Could not find parent page with id {parent_id} in space {space.key}"
            )
    text = _storage_body(body, required=False) or ""
    try:
        page = call.product.create_page(space, title, text, call.actor, parent=parent)
    except ProductError as exc:
        raise RestError(400, exc.message) from exc
    return web.json_response(_content_json(call, page, rest_json.EVERY_CONTENT_EXPANSION))


async def _get_content(call: Call) -> web.Response:
    page = _page_of(call)
    return web.json_response(
        _content_json(call, page, _expansions(call, rest_json.DEFAULT_CONTENT_EXPANSION))
    )


async def _update_content(call: Call) -> web.Response:
    page = _page_of(call, status="current")
    body = await call.json_object()
    version = body.get("version")
    number = version.get("number") if isinstance(version, dict) else None
    if not isinstance(number, int) or isinstance(number, bool):
        raise RestError(
            400, "Must supply an incremented version when updating Content. No version supplied."
        )
    if number != page.version + 1:
        raise RestError(
            409, f"Version must be incremented on update. Current version is: {page.version}"
        )
    title = body.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        raise RestError(400, "Title cannot be empty")
    message = version.get("message", "") if isinstance(version, dict) else ""
    try:
        call.product.update_page(
            page,
            call.actor,
            title=title,
            body=_storage_body(body, required=False),
            message=message if isinstance(message, str) else "",
        )
    except ProductError as exc:
        raise RestError(400, exc.message) from exc
    return web.json_response(_content_json(call, page, rest_json.EVERY_CONTENT_EXPANSION))


async def _delete_content(call: Call) -> web.Response:
    if call.param("status") == "trashed":
        page = _page_of(call, status="trashed")
        call.product.purge_page(page, call.actor)
    else:
        page = _page_of(call, status="current")
        call.product.trash_page(page, call.actor)
    return web.Response(status=204)


async def _spaces(call: Call) -> web.Response:
    keys = call.request.query.getall("spaceKey", [])
    start = max(call.int_param("start", 0), 0)
    limit = min(max(call.int_param("limit", CONFLUENCE_DEFAULT_LIMIT), 0), 500)
    found = [space for space in call.product.spaces.values() if not keys or space.key in keys]
    expand = _expansions(call, frozenset())
    results = [
        rest_json.space(call.product, space, expand) for space in found[start : start + limit]
    ]
    return web.json_response(
        {
            "results": results,
            "start": start,
            "limit": limit,
            "size": len(results),
            "_links": {
                "base": call.base,
                "context": call.host.settings.context_path,
                "self": f"{call.base}/rest/api/space",
            },
        }
    )


async def _space(call: Call) -> web.Response:
    key = call.request.match_info["spaceKey"]
    space = call.product.spaces.get(key)
    if space is None:
        raise RestError(404, f"No space with key : {key}")
    return web.json_response(rest_json.space(call.product, space, _expansions(call, frozenset())))


async def _current_user(call: Call) -> web.Response:
    return web.json_response(
        rest_json.confluence_user(call.base, call.actor, show_email=call.show_email)
    )


# --- app properties (both products) -----------------------------------------------------------


def property_endpoints() -> list[Endpoint]:
    endpoints = []
    for version in ("1", "latest"):
        root = f"/rest/atlassian-connect/{version}/addons/{{addonKey}}/properties"
        endpoints += [
            Endpoint("GET", root, None, _list_properties, "connect"),
            Endpoint("GET", root + "/{propertyKey}", None, _get_property, "connect"),
            Endpoint("PUT", root + "/{propertyKey}", None, _put_property, "connect"),
            Endpoint("DELETE", root + "/{propertyKey}", None, _delete_property, "connect"),
        ]
    return endpoints


def _property_owner(call: Call) -> str:
    """The app whose properties are asked for, if the caller may see them: the app itself, or
    an admin calling as a user (Connect's AddonPropertyServiceImpl)."""
    app_key = call.request.match_info["addonKey"]
    may = call.caller.app_key == app_key or (call.caller.app_key is None and call.caller.admin)
    if not may or app_key not in call.host.installations:
        raise RestError(404, "Add-on with key does not exist.")
    key = call.request.match_info.get("propertyKey")
    if key is not None and len(key) > MAX_PROPERTY_KEY_LENGTH:
        raise RestError(
            400, f"The property key cannot be longer than {MAX_PROPERTY_KEY_LENGTH} characters."
        )
    return app_key


def _property_self(call: Call, app_key: str, key: str) -> str:
    return f"{call.base}/rest/atlassian-connect/1/addons/{app_key}/properties/{key}"


async def _list_properties(call: Call) -> web.Response:
    app_key = _property_owner(call)
    keys = list(call.product.app_properties.get(app_key, {}))
    return web.json_response(
        {"keys": [{"self": _property_self(call, app_key, key), "key": key} for key in keys]},
        headers={"Cache-Control": "no-cache, no-store"},
    )


async def _get_property(call: Call) -> web.Response:
    app_key = _property_owner(call)
    key = call.request.match_info["propertyKey"]
    try:
        value = call.product.app_property(app_key, key)
    except KeyError as exc:
        raise RestError(404, "Property with key not found.") from exc
    return web.json_response(
        {"key": key, "value": value, "self": _property_self(call, app_key, key)},
        headers={"Cache-Control": "no-cache, no-store"},
    )


async def _put_property(call: Call) -> web.Response:
    app_key = _property_owner(call)
    key = call.request.match_info["propertyKey"]
    raw = await call.request.read()
    if len(raw) > MAX_PROPERTY_VALUE_BYTES:
        raise RestError(403, "The value cannot be bigger than 32 KB.")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise RestError(400, "Property value must be a valid JSON object.") from exc
    try:
        created = call.product.set_app_property(app_key, key, value)
    except ProductError as exc:
        raise RestError(409, exc.message) from exc
    status = 201 if created else 200
    message = "Property created." if created else "Property updated."
    return web.json_response({"status-code": status, "message": message}, status=status)


async def _delete_property(call: Call) -> web.Response:
    app_key = _property_owner(call)
    if not call.product.delete_app_property(app_key, call.request.match_info["propertyKey"]):
        raise RestError(404, "Property with key not found.")
    return web.Response(status=204)

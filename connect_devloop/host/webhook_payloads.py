"""The bodies Cloud POSTs to an add-on's webhooks, built from a product change.

Jira (``jira:issue_*``, ``comment_*``)::

    {"timestamp", "webhookEvent", "issue_event_type_name", "user", "issue", "changelog"}
    {"timestamp", "webhookEvent", "comment", "issue"}            # comment events

Confluence (``page_*``, ``blog_*``, ``comment_*``)::

    {"timestamp", "userAccountId", "accountType", "page": {...}}

Issues are in the shape of Jira's REST API v2 (``{"id", "self", "key", "fields"}``); a product
entity already in that shape is kept, a flat one (``{"key", "summary", "project": "TEST"}``)
is put into it. Pages are flattened the way Confluence's webhooks show them
(``{"id", "title", "spaceKey", "contentType", "version", ...}``). Pure: no I/O.
"""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .lifecycle import EMULATED_ACCOUNT_ID

__all__ = [
    "CONFLUENCE_EVENTS",
    "EMULATED_USER",
    "JIRA_EVENTS",
    "Site",
    "build_payload",
    "canned_comment",
    "canned_comment_on_page",
    "canned_issue",
    "canned_page",
    "event_kind",
    "events_for",
    "jira_issue",
    "url_variables",
]

JIRA_ISSUE_EVENTS = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")
COMMENT_EVENTS_JIRA = ("comment_created", "comment_updated", "comment_deleted")
JIRA_EVENTS = (*JIRA_ISSUE_EVENTS, *COMMENT_EVENTS_JIRA, "project_created")
# Confluence event -> the payload's key for the content ("page", "blog", "comment").
CONFLUENCE_CONTENT = {
    **{f"page_{verb}": "page" for verb in ("created", "updated", "removed", "trashed", "restored")},
    **{f"blog_{verb}": "blog" for verb in ("created", "updated", "removed", "trashed", "restored")},
    **{f"comment_{verb}": "comment" for verb in ("created", "updated", "removed")},
}
CONFLUENCE_EVENTS = tuple(CONFLUENCE_CONTENT)
CONTENT_TYPES = {"page": "page", "blog": "blogpost", "comment": "comment"}
# Who did it when a webhook is fired on a site without product data: the account the site's
# iframe requests are signed for.
EMULATED_USER: dict[str, Any] = {"accountId": EMULATED_ACCOUNT_ID, "displayName": "Admin"}
# Fields Jira leaves out of a changelog.
UNLOGGED_FIELDS = frozenset({"updated", "comment", "lastViewed", "watches", "votes"})
_changelog_ids = itertools.count(10000)


@dataclass(frozen=True)
class Site:
    """What a payload needs of the site: its product base URL and which product it is."""

    base_url: str
    product: str  # "jira" | "confluence"


def events_for(product: str) -> tuple[str, ...]:
    """The webhook events a site of ``product`` fires."""
    return JIRA_EVENTS if product == "jira" else CONFLUENCE_EVENTS


def event_kind(product: str, event: str) -> str | None:
    """``"issue"``, ``"comment"``, ``"project"``, ``"page"``, ``"blog"``; ``None`` for an
    event this product does not fire."""
    if product == "jira":
        if event in JIRA_ISSUE_EVENTS:
            return "issue"
        if event == "project_created":
            return "project"
        return "comment" if event in COMMENT_EVENTS_JIRA else None
    return CONFLUENCE_CONTENT.get(event)


def build_payload(
    site: Site,
    event: str,
    entity: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    user: Mapping[str, Any] | None,
    timestamp_ms: int,
    *,
    issue: Mapping[str, Any] | None = None,
    comment: Mapping[str, Any] | None = None,
    update_type: str | None = None,
    property_keys: Sequence[str] = (),
) -> dict[str, Any]:
    """The body of ``event`` for ``entity`` (an issue, comment, page or blog post) as it is
    after the change; ``previous`` as it was before (updates: the changelog), ``issue`` the
    issue a Jira comment belongs to. A ``jira:issue_updated`` with ``comment`` reports a
    comment change (``update_type``: ``issue_commented``...). ``property_keys``: the entity
    properties the webhook asked for (``propertyKeys``). Raises ``ValueError`` for an event
    the product does not fire."""
    kind = event_kind(site.product, event)
    if kind is None:
        raise ValueError(f"a {site.product} site does not fire {event!r}")
    who = dict(user or EMULATED_USER)
    if site.product == "confluence":
        content = confluence_content(site, entity, kind)
        payload: dict[str, Any] = {
            "timestamp": timestamp_ms,
            "userAccountId": str(who.get("accountId") or ""),
            "accountType": "customer",
        }
        if event.endswith("_updated"):
            payload["updateTrigger"] = "edit_page"
            payload["suppressNotifications"] = False
        payload[kind] = content
        return payload
    if kind == "project":
        return {"timestamp": timestamp_ms, "webhookEvent": event, "project": dict(entity)}
    if kind == "comment":
        if issue is None:
            raise ValueError(f"{event} needs the issue the comment belongs to")
        full_issue = jira_issue(site, issue)
        return {
            "timestamp": timestamp_ms,
            "webhookEvent": event,
            "comment": jira_comment(site, entity, full_issue, who),
            "issue": _comment_issue(full_issue),
        }
    current = jira_issue(site, entity, property_keys)
    payload = {
        "timestamp": timestamp_ms,
        "webhookEvent": event,
        "issue_event_type_name": "",
        "user": jira_user(site, who),
        "issue": current,
    }
    items = _changelog_items(jira_issue(site, previous), current) if previous is not None else []
    if event == "jira:issue_created":
        payload["issue_event_type_name"] = "issue_created"
    elif event == "jira:issue_deleted":
        payload["issue_event_type_name"] = "issue_deleted"
    else:
        payload["issue_event_type_name"] = update_type or _update_type(items)
    if comment is not None:
        payload["comment"] = jira_comment(site, comment, current, who)
    if items:
        payload["changelog"] = {"id": str(next(_changelog_ids)), "items": items}
    return payload


def url_variables(payload: Mapping[str, Any]) -> dict[str, str]:
    """The values Jira substitutes into a webhook URL (``/hook?issue={issue.key}``)."""
    values: dict[str, str] = {}
    issue = payload.get("issue")
    if isinstance(issue, Mapping):
        values["issue.id"] = str(issue.get("id") or "")
        values["issue.key"] = str(issue.get("key") or "")
        fields = issue.get("fields")
        project = fields.get("project") if isinstance(fields, Mapping) else None
        if isinstance(project, Mapping):
            values["project.id"] = str(project.get("id") or "")
            values["project.key"] = str(project.get("key") or "")
    user = payload.get("user")
    if isinstance(user, Mapping):
        values["modifiedUser.accountId"] = str(user.get("accountId") or "")
    return values


# --- Jira -------------------------------------------------------------------------------------


def jira_user(site: Site, user: Mapping[str, Any]) -> dict[str, Any]:
    account_id = str(user.get("accountId") or EMULATED_USER["accountId"])
    avatar = f"{site.base_url}/secure/useravatar?ownerId={quote(account_id, safe='')}"
    return {
        "self": f"{site.base_url}/rest/api/2/user?accountId={quote(account_id, safe='')}",
        "accountId": account_id,
        "avatarUrls": {size: f"{avatar}&size={size}" for size in ("48x48", "24x24", "16x16")},
        "displayName": str(user.get("displayName") or user.get("name") or account_id),
        "active": bool(user.get("active", True)),
        "timeZone": str(user.get("timeZone") or "Etc/UTC"),
        "accountType": str(user.get("accountType") or "atlassian"),
    }


def jira_issue(
    site: Site, entity: Mapping[str, Any] | None, property_keys: Sequence[str] = ()
) -> dict[str, Any]:
    """``entity`` in the REST API's shape, with ``self`` links, and the properties asked for."""
    if entity is None:
        return {}
    if isinstance(entity.get("fields"), Mapping):
        issue = copy.deepcopy(dict(entity))
    else:
        issue = _issue_from_flat(site, entity)
    issue_id = str(issue.get("id") or "")
    issue.setdefault("self", f"{site.base_url}/rest/api/2/issue/{issue_id}")
    # What the REST API adds for its own clients.
    for name in ("expand", "properties", "comments"):
        issue.pop(name, None)
    properties = _properties(entity, property_keys)
    if properties:
        issue["properties"] = properties
    return issue


def jira_comment(
    site: Site, entity: Mapping[str, Any], issue: Mapping[str, Any], user: Mapping[str, Any]
) -> dict[str, Any]:
    comment_id = str(entity.get("id") or "10000")
    author = entity.get("author")
    author = author if isinstance(author, Mapping) else user
    updater = entity.get("updateAuthor")
    updater = updater if isinstance(updater, Mapping) else author
    created = _jira_time(entity.get("created"))
    return {
        "self": f"{site.base_url}/rest/api/2/issue/{issue.get('id')}/comment/{comment_id}",
        "id": comment_id,
        "author": jira_user(site, author),
        "body": _text(entity.get("body")),
        "updateAuthor": jira_user(site, updater),
        "created": created,
        "updated": _jira_time(entity.get("updated") or created),
        "jsdPublic": bool(entity.get("jsdPublic", True)),
    }


def canned_issue(site: Site, key: str, user: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """A plausible issue ``key`` for a site with no product data."""
    project_key = key.rpartition("-")[0] or "TEST"
    number = key.rpartition("-")[2]
    issue_id = str(10000 + int(number)) if number.isdigit() else "10001"
    when = _jira_time(now_ms)
    person = jira_user(site, user)
    return {
        "id": issue_id,
        "self": f"{site.base_url}/rest/api/2/issue/{issue_id}",
        "key": key,
        "fields": {
            "summary": f"An issue of the emulated site ({key})",
            "description": None,
            "issuetype": _named(site, "issuetype", "10001", "Task"),
            "project": _project(site, project_key),
            "status": {**_named(site, "status", "10000", "To Do"), "statusCategory": _todo()},
            "priority": _named(site, "priority", "3", "Medium"),
            "labels": [],
            "assignee": None,
            "reporter": person,
            "creator": person,
            "created": when,
            "updated": when,
        },
    }


def canned_comment(
    issue: Mapping[str, Any], user: Mapping[str, Any], now_ms: int
) -> dict[str, Any]:
    return {
        "id": "10000",
        "body": f"A comment on {issue.get('key')} from the emulated site",
        "author": dict(user),
        "created": now_ms,
        "updated": now_ms,
    }


def canned_comment_on_page(
    page: Mapping[str, Any], user: Mapping[str, Any], now_ms: int
) -> dict[str, Any]:
    """A plausible Confluence comment on ``page`` (the product keeps no comments)."""
    account_id = str(user.get("accountId") or EMULATED_USER["accountId"])
    title = page.get("title") or "the page"
    return {
        "id": "131073",
        "title": f"Re: {title}",
        "spaceKey": page.get("spaceKey") or _mapping(page.get("space")).get("key") or "",
        "creatorAccountId": account_id,
        "lastModifierAccountId": account_id,
        "creationDate": now_ms,
        "modificationDate": now_ms,
        "version": 1,
        "_links": {"webui": f"/spaces/x/pages/{page.get('id')}?focusedCommentId=131073"},
        "parent": dict(page),
    }


# --- Confluence -------------------------------------------------------------------------------


def confluence_content(site: Site, entity: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A page, blog post or comment as Confluence's webhooks show it."""
    content_id = entity.get("id")
    space = entity.get("space")
    space_key = entity.get("spaceKey") or (space.get("key") if isinstance(space, Mapping) else "")
    version = entity.get("version")
    history = _mapping(entity.get("history"))
    created_by = _mapping(history.get("createdBy"))
    number = version.get("number") if isinstance(version, Mapping) else version
    by = version.get("by") if isinstance(version, Mapping) else None
    when = version.get("when") if isinstance(version, Mapping) else None
    title = str(entity.get("title") or "")
    created = _epoch_ms(entity.get("creationDate") or history.get("createdDate"))
    content: dict[str, Any] = {
        "id": _numeric(content_id),
        "title": title,
        "spaceKey": str(space_key or ""),
        "contentType": CONTENT_TYPES[kind],
        "creatorAccountId": str(
            entity.get("creatorAccountId") or created_by.get("accountId") or ""
        ),
        "lastModifierAccountId": str(
            entity.get("lastModifierAccountId")
            or (by.get("accountId") if isinstance(by, Mapping) else "")
            or entity.get("creatorAccountId")
            or created_by.get("accountId")
            or ""
        ),
        "self": _web_url(site, entity, str(space_key or ""), title),
        "creationDate": created,
        "modificationDate": _epoch_ms(entity.get("modificationDate") or when) or created,
        "version": int(number) if isinstance(number, int | str) and str(number).isdigit() else 1,
    }
    if kind == "comment":
        parent = entity.get("parent") or entity.get("container")
        if isinstance(parent, Mapping):
            content["parent"] = confluence_content(site, parent, "page")
    return content


def canned_page(site: Site, page_id: str, user: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """A plausible page ``page_id`` for a site with no product data."""
    account_id = str(user.get("accountId") or EMULATED_USER["accountId"])
    return {
        "id": page_id,
        "title": f"A page of the emulated site ({page_id})",
        "spaceKey": "TEST",
        "creatorAccountId": account_id,
        "lastModifierAccountId": account_id,
        "creationDate": now_ms,
        "modificationDate": now_ms,
        "version": 1,
    }


# --- helpers ----------------------------------------------------------------------------------


def _issue_from_flat(site: Site, entity: Mapping[str, Any]) -> dict[str, Any]:
    key = str(entity.get("key") or "")
    issue_id = str(entity.get("id") or "")
    fields: dict[str, Any] = {}
    for name, value in entity.items():
        if name in ("id", "key", "self", "properties", "comments"):
            continue
        if name in ("type", "issuetype"):
            fields["issuetype"] = (
                value if isinstance(value, Mapping) else _named(site, "issuetype", "", str(value))
            )
        elif name == "project":
            fields["project"] = value if isinstance(value, Mapping) else _project(site, str(value))
        elif name in ("status", "priority") and not isinstance(value, Mapping):
            fields[name] = _named(site, name, "", str(value))
        elif name in ("created", "updated"):
            fields[name] = _jira_time(value)
        else:
            fields[name] = value
    if "project" not in fields and "-" in key:
        fields["project"] = _project(site, key.rpartition("-")[0])
    issue: dict[str, Any] = {"id": issue_id, "key": key, "fields": fields}
    if entity.get("self"):
        issue["self"] = entity["self"]
    return issue


def _comment_issue(issue: Mapping[str, Any]) -> dict[str, Any]:
    """The issue as comment events carry it: a few fields only."""
    fields = _mapping(issue.get("fields"))
    kept = ("summary", "issuetype", "project", "assignee", "priority", "status")
    return {
        "id": issue.get("id"),
        "self": issue.get("self"),
        "key": issue.get("key"),
        "fields": {name: copy.deepcopy(fields.get(name)) for name in kept if name in fields},
    }


def _changelog_items(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    old, new = _mapping(before.get("fields")), _mapping(after.get("fields"))
    items = []
    for name in sorted(set(old) | set(new)):
        if name in UNLOGGED_FIELDS or old.get(name) == new.get(name):
            continue
        was, now = old.get(name), new.get(name)
        items.append(
            {
                "field": name,
                "fieldtype": "jira",
                "fieldId": name,
                "from": _field_id(was),
                "fromString": _field_string(was),
                "to": _field_id(now),
                "toString": _field_string(now),
            }
        )
    return items


def _update_type(items: list[dict[str, Any]]) -> str:
    changed = {item["field"] for item in items}
    if changed == {"assignee"}:
        return "issue_assigned"
    if "status" in changed:
        return "issue_generic"
    return "issue_updated"


def _field_id(value: object) -> str | None:
    if isinstance(value, Mapping):
        identifier = value.get("id") or value.get("accountId")
        return str(identifier) if identifier is not None else None
    return None


def _field_string(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return str(value.get("name") or value.get("displayName") or value.get("key") or "")
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return _text(value)


def _properties(entity: Mapping[str, Any], keys: Sequence[str]) -> list[dict[str, Any]]:
    if not keys:
        return []
    raw = entity.get("properties")
    if isinstance(raw, Mapping):
        found = dict(raw)
    elif isinstance(raw, list):
        found = {
            item["key"]: item.get("value")
            for item in raw
            if isinstance(item, Mapping) and isinstance(item.get("key"), str)
        }
    else:
        found = {}
    return [{"key": key, "value": copy.deepcopy(found[key])} for key in keys if key in found]


def _named(site: Site, kind: str, identifier: str, name: str) -> dict[str, Any]:
    return {
        "self": f"{site.base_url}/rest/api/2/{kind}/{identifier}",
        "id": identifier,
        "name": name,
    }


def _project(site: Site, key: str) -> dict[str, Any]:
    return {
        "self": f"{site.base_url}/rest/api/2/project/10000",
        "id": "10000",
        "key": key,
        "name": f"{key} project",
        "projectTypeKey": "software",
        "simplified": False,
    }


def _todo() -> dict[str, Any]:
    return {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"}


def _web_url(site: Site, entity: Mapping[str, Any], space_key: str, title: str) -> str:
    """The content's page in the browser (webhooks carry that, not the REST URL)."""
    webui = _mapping(entity.get("_links")).get("webui")
    if isinstance(webui, str) and webui:
        return site.base_url + webui
    slug = quote(title.replace(" ", "+"), safe="+")
    return f"{site.base_url}/spaces/{space_key}/pages/{entity.get('id')}/{slug}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _jira_time(value: object) -> str:
    """Jira's timestamp format: ``2026-12-02T08:00:00.000+0000``."""
    if isinstance(value, str) and value:
        return value
    millis = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    moment = (
        datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)
        if millis is not None
        else datetime.datetime.now(datetime.UTC)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _epoch_ms(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value:
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return 0
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return int(moment.timestamp() * 1000)
    return 0


def _numeric(value: object) -> object:
    # Confluence's webhooks carry content ids as numbers.
    return int(value) if isinstance(value, str) and value.isdigit() else value

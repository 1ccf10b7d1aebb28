"""How the emulated product's entities look in JSON: the shapes of Jira Cloud's REST v2/v3 and
Confluence Cloud's REST v1 (``/wiki/rest/api``), trimmed to the fields apps commonly read.

Pure functions of the product's data; ``self`` and ``_links`` URLs are absolute under the site's
base URL, as Cloud's are. Jira v3 differs from v2 only in text fields: ``description`` and comment
``body`` are Atlassian Document Format documents there (``adf`` / ``adf_text``).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from .product import Comment, Issue, Page, Product, Project, Space, User

__all__ = [
    "EVERY_CONTENT_EXPANSION",
    "ISSUE_FIELDS",
    "NAVIGABLE_FIELDS",
    "adf",
    "adf_text",
    "comment",
    "confluence_timestamp",
    "confluence_user",
    "content",
    "issue",
    "jira_timestamp",
    "jira_user",
    "project",
    "space",
    "status",
]

ISSUE_EXPAND: Final = (
    "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
)
# Every field an emulated issue has; `*navigable` (search's default) is all but the comments.
ISSUE_FIELDS: Final = (
    "summary",
    "description",
    "issuetype",
    "project",
    "status",
    "priority",
    "labels",
    "reporter",
    "creator",
    "assignee",
    "created",
    "updated",
    "resolution",
    "resolutiondate",
    "comment",
)
NAVIGABLE_FIELDS: Final = frozenset(ISSUE_FIELDS) - {"comment"}
EVERY_CONTENT_EXPANSION: Final = frozenset(
    {"space", "version", "history", "body.storage", "ancestors"}
)
# What GET /rest/api/content/{id} expands when not asked (Confluence Cloud's default).
DEFAULT_CONTENT_EXPANSION: Final = frozenset({"space", "version", "history"})


# --- common -----------------------------------------------------------------------------------


def jira_timestamp(ms: int) -> str:
    """Jira's format: ``2024-01-15T10:30:00.000+0000`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}+0000"


def confluence_timestamp(ms: int) -> str:
    """Confluence's format: ``2024-01-15T10:30:00.000Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def adf(text: str | None) -> dict[str, Any] | None:
    """Plain text as an Atlassian Document Format document: one paragraph per line."""
    if text is None:
        return None
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


def adf_text(document: Any) -> str | None:
    """The text of an ADF document, paragraphs on their own lines (marks and layout are lost:
    the emulated product keeps plain text). ``None`` for ``None``; a string is kept as it is."""
    if document is None or isinstance(document, str):
        return document
    if not isinstance(document, dict):
        raise ValueError("not an Atlassian Document Format document")
    blocks = document.get("content") or []
    if not isinstance(blocks, list):
        raise ValueError("not an Atlassian Document Format document")
    return "\n".join(_inline_text(block) for block in blocks)


def _inline_text(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    children = node.get("content") or []
    return "".join(_inline_text(child) for child in children) if isinstance(children, list) else ""


# --- Jira -------------------------------------------------------------------------------------


def jira_user(base_url: str, user: User, *, show_email: bool = False) -> dict[str, Any]:
    account = quote(user.account_id, safe="")
    avatar = f"{base_url}/secure/useravatar?avatarId=10122"
    shown: dict[str, Any] = {
        "self": f"{base_url}/rest/api/2/user?accountId={account}",
        "accountId": user.account_id,
        "accountType": user.account_type,
    }
    # Cloud shows an e-mail address only to whom it may (apps: the ACCESS_EMAIL_ADDRESSES scope).
    if show_email:
        shown["emailAddress"] = user.email_address
    shown.update(
        {
            "avatarUrls": {
                size: f"{avatar}&size={size}" for size in ("48x48", "24x24", "16x16", "32x32")
            },
            "displayName": user.display_name,
            "active": user.active,
            "timeZone": user.time_zone,
        }
    )
    return shown


def project(product: Product, item: Project, *, show_email: bool = False) -> dict[str, Any]:
    base = product.base_url()
    lead = product.user(item.lead_account_id)
    shown: dict[str, Any] = {
        "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
        "self": f"{base}/rest/api/2/project/{item.id}",
        "id": item.id,
        "key": item.key,
        "name": item.name,
        "description": item.description,
        "avatarUrls": {
            size: f"{base}/secure/projectavatar?pid={item.id}&size={size}"
            for size in ("48x48", "24x24", "16x16", "32x32")
        },
        "projectTypeKey": item.project_type_key,
        "simplified": False,
        "style": "classic",
        "isPrivate": False,
        "issueTypes": [_issue_type(product, kind.name) for kind in product.issue_types.values()],
    }
    if lead is not None:
        shown["lead"] = jira_user(base, lead, show_email=show_email)
    return shown


def issue(
    product: Product,
    item: Issue,
    *,
    version: int,
    fields: Collection[str] | None = None,
    show_email: bool = False,
) -> dict[str, Any]:
    """An issue as ``GET /rest/api/{version}/issue/{key}`` shows it; ``fields`` limits the
    ``fields`` object to those names (``None``: all of them)."""
    base = product.base_url()
    wanted = ISSUE_FIELDS if fields is None else [name for name in ISSUE_FIELDS if name in fields]
    every = _issue_fields(product, item, version=version, show_email=show_email, wanted=wanted)
    return {
        "expand": ISSUE_EXPAND,
        "id": item.id,
        "self": f"{base}/rest/api/{version}/issue/{item.id}",
        "key": item.key,
        "fields": every,
    }


def _issue_fields(
    product: Product, item: Issue, *, version: int, show_email: bool, wanted: Collection[str]
) -> dict[str, Any]:
    base = product.base_url()
    project_item = product.projects[item.project_key]

    def user_or_none(account_id: str | None) -> dict[str, Any] | None:
        user = product.user(account_id)
        return jira_user(base, user, show_email=show_email) if user else None

    done = item.status == "Done"
    shown: dict[str, Any] = {}
    for name in wanted:
        if name == "summary":
            shown[name] = item.summary
        elif name == "description":
            shown[name] = adf(item.description) if version >= 3 else item.description
        elif name == "issuetype":
            shown[name] = _issue_type(product, item.issue_type)
        elif name == "project":
            shown[name] = {
                "self": f"{base}/rest/api/2/project/{project_item.id}",
                "id": project_item.id,
                "key": project_item.key,
                "name": project_item.name,
                "projectTypeKey": project_item.project_type_key,
                "simplified": False,
            }
        elif name == "status":
            shown[name] = status(product, item.status)
        elif name == "priority":
            shown[name] = {
                "self": f"{base}/rest/api/2/priority/3",
                "iconUrl": f"{base}/images/icons/priorities/medium.svg",
                "name": "Medium",
                "id": "3",
            }
        elif name == "labels":
            shown[name] = list(item.labels)
        elif name in ("reporter", "creator"):
            shown[name] = user_or_none(item.reporter_account_id)
        elif name == "assignee":
            shown[name] = user_or_none(item.assignee_account_id)
        elif name == "created":
            shown[name] = jira_timestamp(item.created_ms)
        elif name == "updated":
            shown[name] = jira_timestamp(item.updated_ms)
        elif name == "resolution":
            shown[name] = (
                {"self": f"{base}/rest/api/2/resolution/10000", "id": "10000", "name": "Done"}
                if done
                else None
            )
        elif name == "resolutiondate":
            shown[name] = jira_timestamp(item.updated_ms) if done else None
        elif name == "comment":
            comments = [
                comment(product, item, entry, version=version, show_email=show_email)
                for entry in item.comments
            ]
            shown[name] = {
                "comments": comments,
                "self": f"{base}/rest/api/{version}/issue/{item.id}/comment",
                "maxResults": len(comments),
                "total": len(comments),
                "startAt": 0,
            }
    return shown


def comment(
    product: Product, item: Issue, entry: Comment, *, version: int, show_email: bool = False
) -> dict[str, Any]:
    base = product.base_url()
    author = product.user(entry.author_account_id)
    editor = product.user(entry.update_author_account_id)
    return {
        "self": f"{base}/rest/api/{version}/issue/{item.id}/comment/{entry.id}",
        "id": entry.id,
        "author": jira_user(base, author, show_email=show_email) if author else None,
        "body": adf(entry.body) if version >= 3 else entry.body,
        "updateAuthor": jira_user(base, editor, show_email=show_email) if editor else None,
        "created": jira_timestamp(entry.created_ms),
        "updated": jira_timestamp(entry.updated_ms),
        "jsdPublic": True,
    }


def _issue_type(product: Product, name: str) -> dict[str, Any]:
    base = product.base_url()
    kind = product.issue_types[name.lower()]
    return {
        "self": f"{base}/rest/api/2/issuetype/{kind.id}",
        "id": kind.id,
        "description": kind.description,
        "iconUrl": f"{base}/images/icons/issuetypes/{kind.name.lower()}.svg",
        "name": kind.name,
        "subtask": False,
        "hierarchyLevel": 0,
    }


def status(product: Product, name: str) -> dict[str, Any]:
    base = product.base_url()
    found = product.statuses[name.lower()]
    return {
        "self": f"{base}/rest/api/2/status/{found.id}",
        "description": "",
        "iconUrl": f"{base}/images/icons/statuses/generic.png",
        "name": found.name,
        "id": found.id,
        "statusCategory": {
            "self": f"{base}/rest/api/2/statuscategory/{found.category_id}",
            "id": found.category_id,
            "key": found.category_key,
            "colorName": found.color,
            "name": found.category_name,
        },
    }


# --- Confluence -------------------------------------------------------------------------------


def confluence_user(base_url: str, user: User, *, show_email: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "type": "known",
        "accountId": user.account_id,
        "accountType": user.account_type,
    }
    if show_email:
        shown["email"] = user.email_address
    shown.update(
        {
            "publicName": user.display_name,
            "displayName": user.display_name,
            "profilePicture": {
                "path": "/wiki/aa-avatar/default.png",
                "width": 48,
                "height": 48,
                "isDefault": True,
            },
            "isExternalCollaborator": False,
            "_links": {
                "self": f"{base_url}/rest/api/user?accountId={quote(user.account_id, safe='')}"
            },
        }
    )
    return shown


def space(product: Product, item: Space, expand: Collection[str]) -> dict[str, Any]:
    base = product.base_url()
    shown: dict[str, Any] = {
        "id": item.id,
        "key": item.key,
        "name": item.name,
        "type": item.type,
        "status": "current",
    }
    expandable: dict[str, str] = {
        "settings": f"/rest/api/space/{item.key}/settings",
        "metadata": "",
        "operations": "",
        "lookAndFeel": f"/rest/api/settings/lookandfeel?spaceKey={item.key}",
        "permissions": "",
        "icon": "",
        "description": "",
        "theme": f"/rest/api/space/{item.key}/theme",
        "history": "",
        "homepage": f"/rest/api/content/{item.homepage_id}" if item.homepage_id else "",
    }
    if "description" in expand or "description.plain" in expand:
        shown["description"] = {"plain": {"value": item.description, "representation": "plain"}}
        expandable.pop("description")
    if "homepage" in expand and item.homepage_id and item.homepage_id in product.pages:
        shown["homepage"] = content(product, product.pages[item.homepage_id], frozenset())
        expandable.pop("homepage")
    shown["_expandable"] = expandable
    shown["_links"] = {"webui": f"/spaces/{item.key}", "self": f"{base}/rest/api/space/{item.key}"}
    return shown


def content(
    product: Product, page: Page, expand: Collection[str], *, show_email: bool = False
) -> dict[str, Any]:
    """A page as ``GET /rest/api/content/{id}?expand=...`` shows it."""
    base = product.base_url()
    shown: dict[str, Any] = {
        "id": page.id,
        "type": page.type,
        "status": page.status,
        "title": page.title,
    }
    expandable: dict[str, str] = {
        "childTypes": "",
        "container": f"/rest/api/space/{page.space_key}",
        "metadata": "",
        "operations": "",
        "children": f"/rest/api/content/{page.id}/child",
        "restrictions": f"/rest/api/content/{page.id}/restriction/byOperation",
        "history": f"/rest/api/content/{page.id}/history",
        "ancestors": "",
        "body": "",
        "version": "",
        "descendants": f"/rest/api/content/{page.id}/descendant",
        "space": f"/rest/api/space/{page.space_key}",
    }

    def user_json(account_id: str) -> dict[str, Any] | None:
        user = product.user(account_id)
        return confluence_user(base, user, show_email=show_email) if user else None

    if "space" in expand:
        shown["space"] = space(product, product.spaces[page.space_key], frozenset())
        expandable.pop("space")
    if "history" in expand:
        shown["history"] = {
            "latest": True,
            "createdBy": user_json(page.created_by),
            "createdDate": confluence_timestamp(page.created_ms),
            "_links": {"self": f"{base}/rest/api/content/{page.id}/history"},
        }
        expandable.pop("history")
    if "version" in expand:
        shown["version"] = {
            "by": user_json(page.updated_by),
            "when": confluence_timestamp(page.updated_ms),
            "message": page.version_message,
            "number": page.version,
            "minorEdit": False,
            "_links": {
                "self": f"{base}/rest/experimental/content/{page.id}/version/{page.version}"
            },
        }
        expandable.pop("version")
    if "body.storage" in expand or "body" in expand:
        shown["body"] = {
            "storage": {"value": page.body, "representation": "storage"},
            "_expandable": {"editor": "", "view": "", "export_view": "", "styled_view": ""},
        }
        expandable.pop("body")
    if "ancestors" in expand:
        shown["ancestors"] = [
            content(product, ancestor, frozenset()) for ancestor in _ancestors(product, page)
        ]
        expandable.pop("ancestors")
    shown["extensions"] = {"position": "none"}
    shown["_expandable"] = expandable
    slug = quote(page.title.replace(" ", "+"), safe="+")
    shown["_links"] = {
        "webui": f"/spaces/{page.space_key}/pages/{page.id}/{slug}",
        "edit": f"/pages/resumedraft.action?draftId={page.id}",
        "tinyui": f"/x/{page.id}",
        "self": f"{base}/rest/api/content/{page.id}",
    }
    return shown


def _ancestors(product: Product, page: Page) -> list[Page]:
    chain: list[Page] = []
    parent_id = page.parent_id
    while parent_id is not None and parent_id in product.pages and len(chain) < 100:
        parent = product.pages[parent_id]
        chain.insert(0, parent)
        parent_id = parent.parent_id
    return chain

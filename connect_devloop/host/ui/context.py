"""Who views the site's pages, and the product context of each: the variables module URLs
are filled with (``{issue.key}``, ``{project.id}``, ``{page.id}``, ``{user.accountId}``...)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from ..product import ISSUE_TYPES, Issue, Page, Product, User
from ..rest_auth import session_user, start_session

if TYPE_CHECKING:
    from ..types import Host

__all__ = [
    "issue_variables",
    "page_variables",
    "sign_in",
    "split_query",
    "viewer",
    "with_user",
]

# A context variable passed in a page's query (`?project.key=DEMO`), as products accept them.
_VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")
# Set on a request whose viewer has no session yet: its page signs them in.
_SIGN_IN: web.RequestKey[str] = web.RequestKey("connect_dev_sign_in", str)


def viewer(host: Host, request: web.Request) -> User:
    """Who looks at the page: the account of the site's session cookie, else the site's first
    admin, whom the page then signs in (the emulator's choice: no login form, as the site is
    a local stand-in; a session from ``POST /rest/auth/1/session`` picks another account)."""
    user = session_user(host, request)
    if user is not None:
        return user
    user = host.product.default_user()
    if user.username is not None:
        request[_SIGN_IN] = user.username
    return user


def sign_in(host: Host, request: web.Request, response: web.StreamResponse) -> None:
    """Give ``response`` the session cookie ``viewer`` decided the viewer needs, if any: the
    page's ``AP.request`` calls then reach the REST API as that user."""
    username = request.get(_SIGN_IN)
    if username is not None:
        start_session(host, response, username)


def split_query(query: Mapping[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A page URL's query: context variables (``project.key=DEMO``) for the module URL, and the
    ``ac.*`` parameters, which the products pass on to the app's URL as they are."""
    variables: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    for name, value in query.items():
        if name.startswith("ac."):
            passed.append((name, value))
        elif _VARIABLE_NAME.match(name) and not name.startswith("user."):
            variables[name] = value
    return variables, passed


def issue_variables(product: Product, issue: Issue) -> dict[str, str]:
    project = product.project(issue.project_key)
    issue_type = ISSUE_TYPES.get(issue.issue_type.lower())
    variables = {"issue.key": issue.key, "issue.id": issue.id}
    if issue_type is not None:
        variables["issuetype.id"] = issue_type.id
    if project is not None:
        variables.update({"project.key": project.key, "project.id": project.id})
    return variables


def page_variables(product: Product, page: Page) -> dict[str, str]:
    variables = {
        "page.id": page.id,
        "page.version": str(page.version),
        "page.type": page.type,
        "content.id": page.id,
        "content.version": str(page.version),
        "content.type": page.type,
        "content.plugin": "",
        "space.key": page.space_key,
    }
    space = product.spaces.get(page.space_key)
    if space is not None:
        variables["space.id"] = str(space.id)
    return variables


def with_user(variables: Mapping[str, str], user: User) -> dict[str, str]:
    """``variables`` and the viewer's ``{user.accountId}``."""
    return {**variables, "user.accountId": user.account_id}

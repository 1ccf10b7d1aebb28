"""The emulated site's product: a small in-memory Jira (projects, issues, comments) or Confluence
(spaces, pages), the app properties of installed apps, and one user per site account. The site's
REST API (``rest.py``) and pages read and change it; everything is gone when the site stops.

Listening to changes (the site's webhooks are built on this):

    product.subscribe(listener: Callable[[Change], None]) -> Callable[[], None]

    Change(event: str, entity: dict, previous: dict | None, user: dict, timestamp_ms: int)

``subscribe`` returns the function that unsubscribes. Every mutation calls each listener once,
synchronously, after the product has changed; a listener that raises is logged and the others
still run. ``event`` is the webhook event name Cloud uses; ``entity`` is the changed thing as the
REST API shows it (Jira: REST v2, as ``GET /rest/api/2/issue/{key}`` and ``.../comment/{id}``
answer; Confluence: as ``GET /rest/api/content/{id}?expand=body.storage,version,space,history,
ancestors`` answers); ``previous`` is the same view before the change (``None`` on creation);
``user`` is who did it, as ``GET /rest/api/2/myself`` (Jira) or ``/rest/api/user/current``
(Confluence) would show them, without the e-mail address (an app's own user when an app called);
``timestamp_ms`` is when, in milliseconds since the epoch.

A ``Change`` also has ``parent``, ``None`` unless the entity belongs to another one: the issue
(REST v2 view) for comment events, the space for page events.

| event | entity | previous |
|---|---|---|
| ``project_created`` | the project | ``None`` |
| ``jira:issue_created`` | the issue | ``None`` |
| ``jira:issue_updated`` | the issue after the edit or transition | before |
| ``jira:issue_deleted`` | the issue as it was | ``None`` |
| ``comment_created`` | the comment | ``None`` |
| ``comment_updated`` | the comment after the edit | before |
| ``comment_deleted`` | the comment as it was | ``None`` |
| ``page_created`` | the page | ``None`` |
| ``page_updated`` | the page after the update | before |
| ``page_trashed`` | the page, now ``"status": "trashed"`` | before |
| ``page_removed`` | the page as it was (purged from the trash) | ``None`` |

Confluence's ``DELETE /rest/api/content/{id}`` trashes a current page (``page_trashed``) and
purges a trashed one (``?status=trashed``, ``page_removed``), as Cloud does. Adding a Jira
comment reports ``comment_created`` only (the ``jira:issue_updated`` Jira also sends for it is
the webhooks' to derive), and app properties and ``seed`` report nothing (Cloud has no webhook
for them).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from . import rest_json
from .lifecycle import EMULATED_ACCOUNT_ID

__all__ = [
    "ISSUE_TYPES",
    "MAX_APP_PROPERTIES",
    "STATUSES",
    "TRANSITIONS",
    "Change",
    "Comment",
    "Issue",
    "IssueType",
    "Page",
    "Product",
    "Project",
    "Space",
    "Status",
    "User",
]

logger = logging.getLogger(__name__)

Listener = Callable[["Change"], None]

# Connect's limit of properties per app (AddonPropertyStore.MAX_PROPERTIES_DEFAULT).
MAX_APP_PROPERTIES: Final = 100
# Where new ids start: Jira's first project, issue and comment are 10000; Confluence's first
# space and page ids are of this size too.
FIRST_JIRA_ID: Final = 10000
FIRST_SPACE_ID: Final = 98305
FIRST_PAGE_ID: Final = 65537
DAY_MS: Final = 24 * 3600 * 1000


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category_id: int
    category_key: str
    category_name: str
    color: str


@dataclass(frozen=True)
class IssueType:
    id: str
    name: str
    description: str


# The workflow every emulated project uses: Jira's simplified one.
STATUSES: Final = {
    status.name.lower(): status
    for status in (
        Status("10000", "To Do", 2, "new", "To Do", "blue-gray"),
        Status("3", "In Progress", 4, "indeterminate", "In Progress", "yellow"),
        Status("10001", "Done", 3, "done", "Done", "green"),
    )
}
# Transition id -> the status it leads to; every status can move to every other.
TRANSITIONS: Final = {"11": "To Do", "21": "In Progress", "31": "Done"}
ISSUE_TYPES: Final = {
    kind.name.lower(): kind
    for kind in (
        IssueType("10001", "Task", "A small, distinct piece of work."),
        IssueType("10002", "Bug", "A problem or error."),
        IssueType("10003", "Story", "A user story."),
    )
}


@dataclass
class User:
    """A site account, or the user an installed app acts as (``account_type="app"``)."""

    account_id: str
    display_name: str
    email_address: str
    # The login name for HTTP Basic auth; None for an app's user.
    username: str | None = None
    account_type: str = "atlassian"
    admin: bool = False
    active: bool = True
    time_zone: str = "Etc/UTC"


@dataclass
class Project:
    id: str
    key: str
    name: str
    lead_account_id: str
    project_type_key: str = "software"
    description: str = ""
    next_issue_number: int = 1


@dataclass
class Comment:
    id: str
    issue_id: str
    body: str
    author_account_id: str
    update_author_account_id: str
    created_ms: int
    updated_ms: int


@dataclass
class Issue:
    id: str
    key: str
    project_key: str
    summary: str
    description: str | None
    issue_type: str  # an ISSUE_TYPES name
    status: str  # a STATUSES name
    reporter_account_id: str
    created_ms: int
    updated_ms: int
    assignee_account_id: str | None = None
    labels: list[str] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.key.rpartition("-")[2])


@dataclass
class Space:
    id: int
    key: str
    name: str
    homepage_id: str | None = None
    description: str = ""
    type: str = "global"


@dataclass
class Page:
    id: str
    space_key: str
    title: str
    body: str  # storage format (XHTML)
    version: int
    created_by: str  # account ids
    updated_by: str
    created_ms: int
    updated_ms: int
    parent_id: str | None = None
    status: str = "current"  # or "trashed"
    type: str = "page"
    version_message: str = ""


@dataclass(frozen=True)
class Change:
    """One mutation of the product; see the module docstring for every event."""

    event: str
    entity: dict[str, Any]
    previous: dict[str, Any] | None
    user: dict[str, Any]
    timestamp_ms: int
    parent: dict[str, Any] | None = None


class ProductError(Exception):
    """A mutation the product refuses; ``field`` names the field at fault when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Product:
    """The data of one site. ``kind`` is ``"jira"`` or ``"confluence"``; only that product's
    data is seeded. ``base_url`` gives the site's base URL when an entity is shown (the site
    learns its port only once it listens)."""

    statuses: Final = STATUSES
    issue_types: Final = ISSUE_TYPES

    def __init__(
        self,
        kind: str,
        accounts: Mapping[str, bool],
        *,
        base_url: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``accounts`` maps each site login name to whether it is an admin."""
        self.kind = kind
        self.base_url = base_url
        self._clock = clock
        self._accounts = dict(accounts)
        self._listeners: list[Listener] = []
        self.seed()

    # --- listening ----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every ``Change`` from now on; returns the unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _notify(
        self,
        event: str,
        entity: dict[str, Any],
        previous: dict[str, Any] | None,
        actor: User,
        parent: dict[str, Any] | None = None,
    ) -> None:
        change = Change(
            event=event,
            entity=entity,
            previous=previous,
            user=self.user_json(actor),
            timestamp_ms=self.now_ms(),
            parent=parent,
        )
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                # One broken listener must not fail the REST call that made the change.
                logger.exception("a product listener failed on %s", event)

    # --- state --------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def seed(self) -> None:
        """Forget everything and load the starting data (the site's ``reset`` calls this).
        Listeners stay subscribed and hear nothing of it."""
        self.users: dict[str, User] = {}
        self.projects: dict[str, Project] = {}
        self.issues: dict[str, Issue] = {}
        self.spaces: dict[str, Space] = {}
        self.pages: dict[str, Page] = {}
        # app key -> property key -> JSON value
        self.app_properties: dict[str, dict[str, Any]] = {}
        self._next_id = FIRST_JIRA_ID
        self._next_space_id = FIRST_SPACE_ID
        self._next_page_id = FIRST_PAGE_ID
        for name, admin in self._accounts.items():
            user = _site_user(name, admin)
            self.users[user.account_id] = user
        if self.kind == "jira":
            self._seed_jira()
        else:
            self._seed_confluence()

    def _seed_jira(self) -> None:
        lead = self.default_user()
        now = self.now_ms()
        self.projects["DEMO"] = Project(
            id=self._new_id(), key="DEMO", name="Demo project", lead_account_id=lead.account_id
        )
        seeded = (
            ("Set up the development loop", "Task", "Done", 3, "Run connect-dev up."),
            ("Login page is blank in Safari", "Bug", "In Progress", 2, "Steps: open /login."),
            ("Export issues as CSV", "Story", "To Do", 1, None),
        )
        for summary, kind, status, days_ago, description in seeded:
            issue = self._add_issue(
                "DEMO", summary, kind, description, lead, now - days_ago * DAY_MS
            )
            issue.status = status
        first_bug = self.issues["DEMO-2"]
        first_bug.comments.append(
            Comment(
                id=self._new_id(),
                issue_id=first_bug.id,
                body="Reproduced on Safari 17.",
                author_account_id=lead.account_id,
                update_author_account_id=lead.account_id,
                created_ms=now - DAY_MS,
                updated_ms=now - DAY_MS,
            )
        )

    def _seed_confluence(self) -> None:
        author = self.default_user()
        now = self.now_ms() - DAY_MS
        space = Space(id=self._next_space_id, key="DEMO", name="Demo space")
        self._next_space_id += 1
        self.spaces[space.key] = space
        home = self._add_page(
            "DEMO",
            "Demo space Home",
            "<p>Welcome to the demo space.</p>",
            author,
            None,
            now,
        )
        space.homepage_id = home.id
        self._add_page(
            "DEMO", "Meeting notes", "<p>Nothing decided yet.</p>", author, home.id, now + 60_000
        )

    def _new_id(self) -> str:
        value = self._next_id
        self._next_id += 1
        return str(value)

    # --- users --------------------------------------------------------------------------------

    def default_user(self) -> User:
        """The first admin account (``admin`` by default): the seeded data's author."""
        return next(user for user in self.users.values() if user.account_type == "atlassian")

    def user_by_name(self, username: str) -> User | None:
        return next((u for u in self.users.values() if u.username == username), None)

    def user(self, account_id: str | None) -> User | None:
        return self.users.get(account_id) if account_id else None

    def app_user(self, app_key: str, app_name: str) -> User:
        """The user an installed app acts as when it calls the REST API (made on first use)."""
        account_id = f"557058:{uuid.uuid5(uuid.NAMESPACE_URL, 'connect-app:' + app_key)}"
        user = self.users.get(account_id)
        if user is None:
            user = User(
                account_id=account_id,
                display_name=app_name,
                email_address=f"addon_{app_key}@connect.atlassian.com",
                account_type="app",
            )
            self.users[account_id] = user
        return user

    def user_json(self, user: User, *, show_email: bool = False) -> dict[str, Any]:
        if self.kind == "jira":
            return rest_json.jira_user(self.base_url(), user, show_email=show_email)
        return rest_json.confluence_user(self.base_url(), user, show_email=show_email)

    # --- Jira ---------------------------------------------------------------------------------

    def project(self, id_or_key: str) -> Project | None:
        found = self.projects.get(id_or_key.upper())
        return found or next((p for p in self.projects.values() if p.id == id_or_key), None)

    def issue(self, id_or_key: str) -> Issue | None:
        found = self.issues.get(id_or_key.upper())
        return found or next((i for i in self.issues.values() if i.id == id_or_key), None)

    def issue_json(self, issue: Issue) -> dict[str, Any]:
        """The REST v2 view of an issue with all its fields (what ``Change`` carries)."""
        return rest_json.issue(self, issue, version=2)

    def create_project(self, key: str, name: str, lead: User, actor: User) -> Project:
        if key.upper() in self.projects:
            raise ProductError("A project with that project key already exists.", "projectKey")
        project = Project(
            id=self._new_id(), key=key.upper(), name=name, lead_account_id=lead.account_id
        )
        self.projects[project.key] = project
        self._notify("project_created", rest_json.project(self, project), None, actor)
        return project

    def create_issue(
        self,
        project: Project,
        summary: str,
        issue_type: IssueType,
        actor: User,
        *,
        description: str | None = None,
        labels: Iterable[str] = (),
        assignee: User | None = None,
    ) -> Issue:
        issue = self._add_issue(
            project.key, summary, issue_type.name, description, actor, self.now_ms()
        )
        issue.labels = list(labels)
        issue.assignee_account_id = assignee.account_id if assignee else None
        self._notify("jira:issue_created", self.issue_json(issue), None, actor)
        return issue

    def _add_issue(
        self,
        project_key: str,
        summary: str,
        kind: str,
        description: str | None,
        reporter: User,
        created_ms: int,
    ) -> Issue:
        project = self.projects[project_key]
        key = f"{project.key}-{project.next_issue_number}"
        project.next_issue_number += 1
        issue = Issue(
            id=self._new_id(),
            key=key,
            project_key=project.key,
            summary=summary,
            description=description,
            issue_type=kind,
            status="To Do",
            reporter_account_id=reporter.account_id,
            created_ms=created_ms,
            updated_ms=created_ms,
        )
        self.issues[key] = issue
        return issue

    def edit_issue(self, issue: Issue, changes: Mapping[str, Any], actor: User) -> None:
        """Apply ``changes``: any of ``summary``, ``description``, ``labels``, ``assignee``
        (a ``User`` or ``None``), ``issuetype`` (an ``IssueType``), ``status`` (a status name).
        Notifies ``jira:issue_updated`` when something did change."""
        before = self.issue_json(issue)
        for name, value in changes.items():
            if name == "summary":
                issue.summary = value
            elif name == "description":
                issue.description = value
            elif name == "labels":
                issue.labels = list(value)
            elif name == "assignee":
                issue.assignee_account_id = value.account_id if value else None
            elif name == "issuetype":
                issue.issue_type = value.name
            elif name == "status":
                issue.status = STATUSES[value.lower()].name
            else:
                raise ValueError(f"the product cannot edit {name!r}")
        after = self.issue_json(issue)
        if _without_updated(after) == _without_updated(before):
            return
        issue.updated_ms = self.now_ms()
        self._notify("jira:issue_updated", self.issue_json(issue), before, actor)

    def delete_issue(self, issue: Issue, actor: User) -> None:
        last = self.issue_json(issue)
        del self.issues[issue.key]
        self._notify("jira:issue_deleted", last, None, actor)

    def add_comment(self, issue: Issue, body: str, actor: User) -> Comment:
        now = self.now_ms()
        comment = Comment(
            id=self._new_id(),
            issue_id=issue.id,
            body=body,
            author_account_id=actor.account_id,
            update_author_account_id=actor.account_id,
            created_ms=now,
            updated_ms=now,
        )
        issue.comments.append(comment)
        issue.updated_ms = now
        self._notify(
            "comment_created",
            rest_json.comment(self, issue, comment, version=2),
            None,
            actor,
            self.issue_json(issue),
        )
        return comment

    def edit_comment(self, issue: Issue, comment: Comment, body: str, actor: User) -> None:
        before = rest_json.comment(self, issue, comment, version=2)
        comment.body = body
        comment.update_author_account_id = actor.account_id
        comment.updated_ms = self.now_ms()
        self._notify(
            "comment_updated",
            rest_json.comment(self, issue, comment, version=2),
            before,
            actor,
            self.issue_json(issue),
        )

    def delete_comment(self, issue: Issue, comment: Comment, actor: User) -> None:
        last = rest_json.comment(self, issue, comment, version=2)
        issue.comments.remove(comment)
        self._notify("comment_deleted", last, None, actor, self.issue_json(issue))

    # --- Confluence ---------------------------------------------------------------------------

    def page(self, page_id: str) -> Page | None:
        return self.pages.get(page_id)

    def page_json(self, page: Page) -> dict[str, Any]:
        """A page with everything expanded (what ``Change`` carries)."""
        return rest_json.content(self, page, rest_json.EVERY_CONTENT_EXPANSION)

    def create_page(
        self,
        space: Space,
        title: str,
        body: str,
        actor: User,
        *,
        parent: Page | None = None,
    ) -> Page:
        self._check_title(space, title, None)
        page = self._add_page(
            space.key,
            title,
            body,
            actor,
            parent.id if parent else space.homepage_id,
            self.now_ms(),
        )
        self._notify("page_created", self.page_json(page), None, actor, self._space_json(space))
        return page

    def _add_page(
        self,
        space_key: str,
        title: str,
        body: str,
        author: User,
        parent_id: str | None,
        created_ms: int,
    ) -> Page:
        page = Page(
            id=str(self._next_page_id),
            space_key=space_key,
            title=title,
            body=body,
            version=1,
            created_by=author.account_id,
            updated_by=author.account_id,
            created_ms=created_ms,
            updated_ms=created_ms,
            parent_id=parent_id,
        )
        self._next_page_id += 1
        self.pages[page.id] = page
        return page

    def update_page(
        self,
        page: Page,
        actor: User,
        *,
        title: str | None = None,
        body: str | None = None,
        message: str = "",
    ) -> None:
        """A new version of ``page`` (the caller checked the version number)."""
        space = self.spaces[page.space_key]
        if title is not None:
            self._check_title(space, title, page)
        before = self.page_json(page)
        if title is not None:
            page.title = title
        if body is not None:
            page.body = body
        page.version += 1
        page.version_message = message
        page.updated_by = actor.account_id
        page.updated_ms = self.now_ms()
        self._notify("page_updated", self.page_json(page), before, actor, self._space_json(space))

    def trash_page(self, page: Page, actor: User) -> None:
        before = self.page_json(page)
        page.status = "trashed"
        self._notify(
            "page_trashed",
            self.page_json(page),
            before,
            actor,
            self._space_json(self.spaces[page.space_key]),
        )

    def purge_page(self, page: Page, actor: User) -> None:
        last = self.page_json(page)
        del self.pages[page.id]
        self._notify(
            "page_removed", last, None, actor, self._space_json(self.spaces[page.space_key])
        )

    def _check_title(self, space: Space, title: str, page: Page | None) -> None:
        clash = any(
            other.title == title and other.status == "current" and other is not page
            for other in self.pages.values()
            if other.space_key == space.key
        )
        if clash:
            # Confluence's words for a duplicate title.
            raise ProductError(
                "A page with this title already exists: A page already exists with the same "
                "TITLE in this space"
            )

    def _space_json(self, space: Space) -> dict[str, Any]:
        return rest_json.space(self, space, frozenset())

    # --- app properties -----------------------------------------------------------------------

    def app_property(self, app_key: str, key: str) -> Any:
        """The value, or raise ``KeyError``."""
        return self.app_properties.get(app_key, {})[key]

    def set_app_property(self, app_key: str, key: str, value: Any) -> bool:
        """Store ``value``; ``True`` when the property is new. Raises ``ProductError`` when
        the app already has ``MAX_APP_PROPERTIES`` others."""
        properties = self.app_properties.setdefault(app_key, {})
        created = key not in properties
        if created and len(properties) >= MAX_APP_PROPERTIES:
            raise ProductError(
                "Maximum number of properties allowed to be stored "
                f"{MAX_APP_PROPERTIES} has been reached."
            )
        properties[key] = value
        return created

    def delete_app_property(self, app_key: str, key: str) -> bool:
        return self.app_properties.get(app_key, {}).pop(key, _MISSING) is not _MISSING


_MISSING: Final = object()


def _site_user(name: str, admin: bool) -> User:
    # The user called "admin" is the one the site's iframe requests are signed for
    # (lifecycle.EMULATED_ACCOUNT_ID); other accounts get a stable id from their name.
    account_id = (
        EMULATED_ACCOUNT_ID
        if name == "admin"
        else f"557058:{uuid.uuid5(uuid.NAMESPACE_URL, 'connect-devloop-user:' + name)}"
    )
    local = name.partition("@")[0]
    return User(
        account_id=account_id,
        display_name=local.replace(".", " ").title() if local else name,
        email_address=name if "@" in name else f"{name}@example.com",
        username=name,
        admin=admin,
    )


def _without_updated(issue_json: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in issue_json["fields"].items() if k != "updated"}
    return {**issue_json, "fields": fields}

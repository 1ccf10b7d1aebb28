"""Webhooks: what an emulated site POSTs to installed add-ons when its product data changes.

Each installed descriptor's ``modules.webhooks`` (``{"event", "url", "filter", "excludeBody",
"propertyKeys"}``) subscribes the add-on to one of Cloud's webhook events. When the product
(product.py) reports a change, or when a webhook is fired on demand (``connect-dev host fire``,
``POST /_emulator/webhooks/fire``, the site's pages), every enabled add-on that declares the
event gets a POST to ``baseUrl`` + ``url``:

- the body Cloud sends (webhook_payloads.py), or none with ``"excludeBody": true``;
- ``Authorization: JWT``: HS256 with the tenant's sharedSecret, ``iss`` = the clientKey, ``qsh``
  of ``POST&<url path>&<url query>``, valid for 3 minutes;
- Jira's URL variables filled in (``/hook?issue={issue.key}``), and a ``filter`` in JQL
  honoured for the subset webhook_jql.py evaluates.

Deliveries never block the change that caused them: each add-on has a queue worked by one task,
so an add-on gets its webhooks one at a time and in order, and a slow add-on delays no other.
Every delivery (status, time, the start of the add-on's answer, or why none came) is a
``WebhookDelivery`` in the site's record. There are no retries (the emulator's choice; Cloud
retries some failures later).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from .. import jwt
from .lifecycle import USER_AGENT, Installation, addon_url
from .product import Change
from .record import WebhookDelivery
from .webhook_jql import IssueFilter, UnsupportedJql, issue_filter
from .webhook_payloads import (
    EMULATED_USER,
    Site,
    build_payload,
    canned_comment,
    canned_comment_on_page,
    canned_issue,
    canned_page,
    event_kind,
    events_for,
    jira_issue,
    url_variables,
)

if TYPE_CHECKING:
    from .types import Host

__all__ = [
    "EntityNotFound",
    "FireResult",
    "Skipped",
    "Trigger",
    "WebhookDispatcher",
    "WebhookSubscription",
    "declared_webhooks",
]

logger = logging.getLogger(__name__)

# How much of an add-on's answer the record keeps.
ANSWER_LIMIT = 1000
# Hosts sign for 3 minutes (PROTOCOL.md §5); a webhook is sent at once, so that is plenty.
TOKEN_TTL_S = jwt.DEFAULT_TTL_S
# What Jira sends on `jira:issue_updated` for a comment change, besides the comment event.
COMMENT_UPDATE_TYPES = {
    "comment_created": "issue_commented",
    "comment_updated": "issue_comment_edited",
    "comment_deleted": "issue_comment_deleted",
}
_VARIABLE = re.compile(r"\{([A-Za-z]+\.[A-Za-z]+)\}")


class EntityNotFound(LookupError):
    """``fire`` was asked for an issue or page the site does not have."""


@dataclass(frozen=True)
class WebhookSubscription:
    """One entry of a descriptor's ``modules.webhooks``; ``key`` is the add-on's."""

    key: str
    event: str
    url: str
    exclude_body: bool = False
    filter: str = ""
    property_keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {"event": self.event, "url": self.url}
        if self.filter:
            described["filter"] = self.filter
        if self.exclude_body:
            described["excludeBody"] = True
        if self.property_keys:
            described["propertyKeys"] = list(self.property_keys)
        return described


def declared_webhooks(installation: Installation) -> list[WebhookSubscription]:
    """The webhooks an installed descriptor declares (a single object is taken as a list of
    one, as ACE does); entries without a string ``event`` and ``url`` are left out."""
    modules = installation.descriptor.get("modules")
    entries = modules.get("webhooks") if isinstance(modules, dict) else None
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        return []
    declared = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        event, url = entry.get("event"), entry.get("url")
        if not isinstance(event, str) or not isinstance(url, str) or not event or not url:
            continue
        keys = entry.get("propertyKeys")
        declared.append(
            WebhookSubscription(
                key=installation.key,
                event=event,
                url=url,
                exclude_body=entry.get("excludeBody") is True,
                filter=entry["filter"].strip() if isinstance(entry.get("filter"), str) else "",
                property_keys=tuple(k for k in keys if isinstance(k, str))
                if isinstance(keys, list)
                else (),
            )
        )
    return declared


@dataclass(frozen=True)
class Trigger:
    """What happened: Cloud's event name, the entity after the change (as it was, for a
    deletion), before it (updates), who made it and when; ``issue`` is the issue of a Jira
    comment; ``comment`` and ``update_type`` make a ``jira:issue_updated`` the report of a
    comment change (``issue_commented``...)."""

    event: str
    entity: Mapping[str, Any]
    previous: Mapping[str, Any] | None
    user: Mapping[str, Any]
    timestamp_ms: int
    issue: Mapping[str, Any] | None = None
    comment: Mapping[str, Any] | None = None
    update_type: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A declared webhook that was not sent, and why."""

    key: str
    event: str
    url: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "event": self.event, "url": self.url, "reason": self.reason}


@dataclass
class FireResult:
    """What firing one event did: the deliveries (in order), the webhooks not sent, and which
    events each installed add-on declares (to say why nothing was sent)."""

    event: str
    deliveries: list[WebhookDelivery]
    skipped: list[Skipped]
    declared: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "deliveries": [_delivery_dict(d) for d in self.deliveries],
            "skipped": [s.to_dict() for s in self.skipped],
            "declared": self.declared,
        }


@dataclass
class _Job:
    subscription: WebhookSubscription
    path: str  # the declared url with its variables filled in
    body: bytes
    trigger: str  # "change" | "fire"
    filter_note: str
    identifier: str = field(default_factory=lambda: str(uuid.uuid4()))
    done: asyncio.Future[WebhookDelivery] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WebhookDispatcher:
    """The site's webhook sender. ``start`` subscribes to the product's changes; ``fire``
    sends one event on demand and returns what was delivered; ``close`` stops the workers."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._queues: dict[str, asyncio.Queue[_Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._filters: dict[str, IssueFilter | UnsupportedJql] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen to the changes of the site's product."""
        self._loop = asyncio.get_running_loop()
        if self._unsubscribe is None:
            self._unsubscribe = self._host.product.subscribe(self.on_change)

    def reset(self) -> None:
        """Drop what is queued and not yet sent (the site's ``reset``)."""
        for worker in self._workers.values():
            worker.cancel()
        for queue in self._queues.values():
            while not queue.empty():
                queue.get_nowait().done.cancel()
        self._workers.clear()
        self._queues.clear()
        self._filters.clear()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            with contextlib.suppress(Exception):
                self._unsubscribe()
            self._unsubscribe = None
        workers = list(self._workers.values())
        self.reset()
        await asyncio.gather(*workers, return_exceptions=True)

    # --- what add-ons declare -----------------------------------------------------------------

    def declared(self) -> dict[str, list[dict[str, Any]]]:
        """Each installed add-on's webhooks, by add-on key."""
        return {
            key: [s.to_dict() for s in declared_webhooks(installation)]
            for key, installation in sorted(self._host.installations.items())
        }

    def declared_events(self) -> dict[str, list[str]]:
        return {
            key: sorted({s.event for s in declared_webhooks(installation)})
            for key, installation in sorted(self._host.installations.items())
        }

    @property
    def events(self) -> tuple[str, ...]:
        """The events this site fires."""
        return events_for(self._host.settings.product)

    # --- changes and firing -------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        """The product's listener: queue the webhooks ``change`` causes, without waiting."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is not None and running is not self._loop:
            self._loop.call_soon_threadsafe(self._on_change, change)
        else:
            self._on_change(change)

    def _on_change(self, change: Change) -> None:
        product = self._host.settings.product
        kind = event_kind(product, change.event)
        if kind is None:
            logger.debug("no webhook event %s on a %s site", change.event, product)
            return
        # The issue of a Jira comment (the product gives it as the change's parent).
        issue = change.parent if kind == "comment" and product == "jira" else None
        trigger = Trigger(
            event=change.event,
            entity=change.entity,
            previous=change.previous,
            user=change.user or EMULATED_USER,
            timestamp_ms=change.timestamp_ms,
            issue=issue,
        )
        self._dispatch(trigger, "change")
        if product == "jira" and issue is not None and change.event in COMMENT_UPDATE_TYPES:
            # Jira also reports a comment as an update of its issue.
            self._dispatch(
                Trigger(
                    event="jira:issue_updated",
                    entity=issue,
                    previous=None,
                    user=trigger.user,
                    timestamp_ms=trigger.timestamp_ms,
                    comment=change.entity,
                    update_type=COMMENT_UPDATE_TYPES[change.event],
                ),
                "change",
            )

    async def fire(
        self,
        event: str,
        *,
        issue: str | None = None,
        page: str | None = None,
        key: str | None = None,
    ) -> FireResult:
        """Send ``event`` now, about issue ``issue`` (Jira) or page ``page`` (Confluence),
        taken from the product, or made up when the site has no product data; only to the
        add-on ``key`` when given. Returns once every delivery has ended.

        Raises ``ValueError`` for an event this site does not fire or a wrong argument, and
        ``EntityNotFound`` for an issue or page the product does not have.
        """
        trigger = self.trigger_for(event, issue=issue, page=page)
        jobs, skipped = self._dispatch(trigger, "fire", only_key=key)
        if jobs:
            # `wait`, not `gather`: the caller going away must not cancel the deliveries.
            await asyncio.wait([job.done for job in jobs])
        deliveries = [job.done.result() for job in jobs if not job.done.cancelled()]
        return FireResult(event, deliveries, skipped, self.declared_events())

    def trigger_for(
        self, event: str, *, issue: str | None = None, page: str | None = None
    ) -> Trigger:
        """The change ``fire`` reports: the issue or page as the product has it now (without
        ``issue`` or ``page``: the newest one), or a made-up one when the site has none."""
        product = self._host.settings.product
        kind = event_kind(product, event)
        if kind is None:
            raise ValueError(
                f"an emulated {product} site does not fire {event!r}; it fires "
                f"{', '.join(events_for(product))}"
            )
        if product == "jira" and page is not None:
            raise ValueError("a page is a Confluence thing; give an issue key on a Jira site")
        if product == "confluence" and issue is not None:
            raise ValueError("an issue is a Jira thing; give a page id on a Confluence site")
        now_ms = int(time.time() * 1000)
        user = self._acting_user()
        site = self._site()
        if product == "confluence":
            found = self._product_page(page)
            content = found or canned_page(site, page or "65537", user, now_ms)
            if kind == "comment":
                return Trigger(
                    event, canned_comment_on_page(content, user, now_ms), None, user, now_ms
                )
            return Trigger(event, content, None, user, now_ms)
        issue_json = self._product_issue(issue) or canned_issue(
            site, issue or "DEMO-1", user, now_ms
        )
        if kind == "project":
            fields = issue_json.get("fields")
            project = fields.get("project") if isinstance(fields, Mapping) else None
            return Trigger(event, dict(project or {}), None, user, now_ms)
        if kind == "issue":
            return Trigger(event, issue_json, None, user, now_ms)
        comment = _last_comment(issue_json) or canned_comment(issue_json, user, now_ms)
        return Trigger(event, comment, None, user, now_ms, issue=issue_json)

    def _dispatch(
        self, trigger: Trigger, source: str, *, only_key: str | None = None
    ) -> tuple[list[_Job], list[Skipped]]:
        site = self._site()
        jobs: list[_Job] = []
        skipped: list[Skipped] = []
        for installation in list(self._host.installations.values()):
            if only_key is not None and installation.key != only_key:
                continue
            for subscription in declared_webhooks(installation):
                if subscription.event != trigger.event:
                    continue
                if not installation.enabled:
                    skipped.append(_skip(subscription, "the app is disabled"))
                    continue
                passes, note = self._apply_filter(subscription, trigger, site)
                if not passes:
                    skipped.append(_skip(subscription, note))
                    continue
                try:
                    payload = build_payload(
                        site,
                        trigger.event,
                        trigger.entity,
                        trigger.previous,
                        trigger.user,
                        trigger.timestamp_ms,
                        issue=trigger.issue,
                        comment=trigger.comment,
                        update_type=trigger.update_type,
                        property_keys=subscription.property_keys,
                    )
                except ValueError as exc:
                    skipped.append(_skip(subscription, str(exc)))
                    continue
                job = _Job(
                    subscription=subscription,
                    path=_fill_variables(subscription.url, url_variables(payload)),
                    body=b"" if subscription.exclude_body else json.dumps(payload).encode(),
                    trigger=source,
                    filter_note=note,
                )
                self._queue(installation.key).put_nowait(job)
                jobs.append(job)
        for skip in skipped:
            logger.info("webhook %s for %s not sent: %s", skip.event, skip.key, skip.reason)
        return jobs, skipped

    def _apply_filter(
        self, subscription: WebhookSubscription, trigger: Trigger, site: Site
    ) -> tuple[bool, str]:
        """Whether the webhook is sent, and what its record says about the filter."""
        text = subscription.filter
        if not text:
            return True, ""
        if site.product != "jira":
            return True, "not applied: only Jira webhooks have a JQL filter"
        issue = trigger.entity if event_kind("jira", trigger.event) == "issue" else trigger.issue
        parsed = self._filters.get(text)
        if parsed is None:
            try:
                parsed = issue_filter(text)
            except UnsupportedJql as exc:
                parsed = exc
                logger.warning(
                    "webhook filter %r of %s is not evaluated by the emulated site (%s): "
                    "its webhooks are sent unfiltered",
                    text,
                    subscription.key,
                    exc,
                )
            self._filters[text] = parsed
        if isinstance(parsed, UnsupportedJql):
            return True, f"not applied: {parsed}"
        if parsed.matches(jira_issue(site, issue)):
            return True, "matched"
        key = (issue or {}).get("key", "the issue")
        return False, f"the filter {text!r} does not match {key}"

    # --- delivering ---------------------------------------------------------------------------

    def _queue(self, key: str) -> asyncio.Queue[_Job]:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
        worker = self._workers.get(key)
        if worker is None or worker.done():
            self._workers[key] = asyncio.create_task(self._work(queue), name=f"webhooks-{key}")
        return queue

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            if job.done.done():  # cancelled while it waited
                continue
            try:
                delivery = await self._deliver(job)
            except Exception as exc:  # a bug here must not stop the add-on's later webhooks
                logger.exception("webhook delivery failed")
                delivery = self._record(job, job.subscription.url, None, 0.0, "", "", repr(exc))
            if not job.done.done():
                job.done.set_result(delivery)

    async def _deliver(self, job: _Job) -> WebhookDelivery:
        subscription = job.subscription
        # The installation as it is now: a reinstall since the change brought a new secret.
        installation = self._host.installations.get(subscription.key)
        if installation is None:
            return self._record(
                job, job.path, None, 0.0, "", "unsigned", "the app was uninstalled before it"
            )
        url = addon_url(installation.base_url, job.path)
        parts = urlsplit(url)
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": job.identifier,
        }
        signed = "unsigned"
        if installation.shared_secret is not None:
            claims = jwt.make_claims(
                self._host.client_key,
                "POST",
                parts.path,
                parts.query,
                urlsplit(installation.base_url).path,
                ttl=TOKEN_TTL_S,
            )
            headers["Authorization"] = f"JWT {jwt.encode_hs256(claims, installation.shared_secret)}"
            signed = "HS256"
        timeout = self._host.settings.callback_timeout_s
        status: int | None = None
        answer = ""
        error: str | None = None
        started = time.perf_counter()
        try:
            async with self._host.session.post(
                # `encoded=True`: the query was built to match the qsh; yarl must not re-encode.
                URL(url, encoded=True),
                data=job.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                status = response.status
                answer = (await response.read()).decode("utf-8", errors="replace")
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except aiohttp.ClientError as exc:
            text = str(exc)
            error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.info(
            "webhook %s for %s: POST %s %s in %.0f ms",
            subscription.event,
            subscription.key,
            url,
            status if status is not None else error,
            duration_ms,
        )
        return self._record(job, url, status, duration_ms, answer, signed, error)

    def _record(
        self,
        job: _Job,
        url: str,
        status: int | None,
        duration_ms: float,
        answer: str,
        signed: str,
        error: str | None,
    ) -> WebhookDelivery:
        if len(answer) > ANSWER_LIMIT:
            answer = answer[:ANSWER_LIMIT] + "…"
        delivery = WebhookDelivery(
            event=job.subscription.event,
            key=job.subscription.key,
            url=url,
            status=status,
            duration_ms=duration_ms,
            answer=answer,
            signed=signed,
            body_excluded=job.subscription.exclude_body,
            identifier=job.identifier,
            trigger=job.trigger,
            filter=job.filter_note,
            error=error,
        )
        self._host.record.add(delivery)
        return delivery

    # --- the site and its product -------------------------------------------------------------

    def _site(self) -> Site:
        return Site(self._host.base_url, self._host.settings.product)

    def _acting_user(self) -> dict[str, Any]:
        """Who fires a webhook on demand: the site's first admin, as the product shows them."""
        product = self._host.product
        return dict(product.user_json(product.default_user()))

    def _product_issue(self, key: str | None) -> dict[str, Any] | None:
        """The product's issue ``key`` (REST v2 view); the newest without ``key``, ``None``
        when the site has no issue left. Raises ``EntityNotFound`` for a key it does not have."""
        product = self._host.product
        if key is None:
            issues = list(product.issues.values())
            return product.issue_json(issues[-1]) if issues else None
        found = product.issue(key)
        if found is None:
            raise EntityNotFound(f"the emulated site has no issue {key!r}")
        return product.issue_json(found)

    def _product_page(self, page_id: str | None) -> dict[str, Any] | None:
        """The product's page ``page_id``, as ``_product_issue`` (trashed pages too)."""
        product = self._host.product
        if page_id is None:
            pages = [page for page in product.pages.values() if page.status == "current"]
            return product.page_json(pages[-1]) if pages else None
        found = product.page(page_id)
        if found is None:
            raise EntityNotFound(f"the emulated site has no page {page_id!r}")
        return product.page_json(found)


def _skip(subscription: WebhookSubscription, reason: str) -> Skipped:
    return Skipped(subscription.key, subscription.event, subscription.url, reason)


def _fill_variables(url: str, values: Mapping[str, str]) -> str:
    """Jira's URL variables (``{issue.key}``), percent-encoded; unknown ones stay as written."""
    return _VARIABLE.sub(
        lambda match: (
            quote(values[match.group(1)], safe="") if match.group(1) in values else match.group(0)
        ),
        url,
    )


def _last_comment(issue: Mapping[str, Any]) -> dict[str, Any] | None:
    fields = issue.get("fields")
    comments = fields.get("comment") if isinstance(fields, Mapping) else None
    listed = comments.get("comments") if isinstance(comments, Mapping) else None
    if isinstance(listed, list) and listed and isinstance(listed[-1], Mapping):
        return dict(listed[-1])
    return None


def _delivery_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    return dataclasses.asdict(delivery)

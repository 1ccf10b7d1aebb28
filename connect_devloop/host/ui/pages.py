"""The emulated site's pages, in the product's shape.

Paths under the context path:

- ``/``: home, the installed apps and the issues (or pages);
- ``/plugins/servlet/upm``: Manage apps (what the dashboard's ``o`` opens);
- ``/plugins/servlet/ac/{appKey}/{moduleKey}``: a general, admin, configure or post-install
  page;
- ``/browse/{issueKey}``: a Jira issue, with web panels, issue glances and contents, web items;
- ``/spaces/{spaceKey}/pages/{pageId}``: a Confluence page, with static and dynamic macros;
- ``/plugins/servlet/connect-dev/redirect/{appKey}/{moduleKey}``: a web item's link to the app,
  signed when it is followed (the emulator's choice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..connect_js import ConnectJsSource, ConnectJsUnavailable
from ..iframe import iframe_url
from ..lifecycle import Installation
from ..product import Issue, Page, Product, User
from .context import issue_variables, page_variables, sign_in, split_query, viewer, with_user
from .layout import (
    MANAGE_APPS_PATH,
    Frame,
    admin_sidebar,
    attr,
    needs_bridge,
    page_module_path,
    render,
    web_item_html,
)
from .macros import MacroUse, default_parameters, render_static_macro, uses_in_body
from .modules import ISSUE_LEFT, ISSUE_RIGHT, PAGE_TYPES, Module, app_modules, find_module

if TYPE_CHECKING:
    from ..types import Host

__all__ = ["SitePages", "iframe_options"]

HTML = "text/html"


def iframe_options(module: Module, variables: Mapping[str, str]) -> dict[str, Any]:
    """What ``connectHost.create`` is told about a module's iframe besides its URL."""
    options: dict[str, Any] = {
        "autoresize": True,
        "width": "100%",
        "moduleType": module.type,
        "moduleLocation": module.location,
        "productContext": dict(variables),
    }
    layout = module.raw.get("layout")
    sizes = layout if isinstance(layout, dict) else module.raw
    for name in ("width", "height"):
        value = sizes.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            options[name] = str(value)
    if module.type in PAGE_TYPES:
        options["isFullPage"] = True
        options.setdefault("height", "400px")
    return options


class SitePages:
    """The pages of one site; ``connect_js`` is where they get the bridge from."""

    def __init__(self, host: Host, connect_js: ConnectJsSource) -> None:
        self.host = host
        self.connect_js = connect_js

    # --- shared -------------------------------------------------------------------------------

    @property
    def product(self) -> Product:
        return self.host.product

    async def respond(self, request: web.Request, frame: Frame) -> web.Response:
        bridge: ConnectJsUnavailable | None = None
        with_bridge = needs_bridge(self.host, frame)
        if with_bridge:
            try:
                await self.connect_js.get()
            except ConnectJsUnavailable as exc:
                bridge, with_bridge = exc, False
                # Without the bridge the slots are drawn as plain iframes.
                for slot in frame.slots:
                    frame.content = frame.content.replace(slot.html(True), slot.html(False))
        page = render(self.host, frame, bridge, with_bridge=with_bridge)
        response = web.Response(text=page, content_type=HTML, status=frame.status)
        sign_in(self.host, request, response)
        return response

    def slot_html(
        self,
        frame: Frame,
        installation: Installation,
        module: Module,
        variables: Mapping[str, str],
        *,
        passed: list[tuple[str, str]] | None = None,
    ) -> str:
        """An iframe slot for ``module`` on ``frame``, signed for its viewer."""
        user = frame.user
        signed = iframe_url(
            self.host,
            installation,
            module.key,
            module.url,
            with_user(variables, user),
            extra_params=passed or (),
            account_id=user.account_id,
        )
        slot = frame.slot(module.app_key, module.key, signed, iframe_options(module, variables))
        return slot.html(True)

    def enabled_modules(self) -> list[tuple[Installation, Module]]:
        return [
            (installation, module)
            for installation in self.host.installations.values()
            if installation.enabled
            for module in app_modules(installation)
        ]

    async def not_found(self, request: web.Request, what: str) -> web.Response:
        frame = Frame(
            title="Not found",
            content=f'<h1>Not found</h1><p class="cd-muted">{escape(what)}</p>',
            user=viewer(self.host, request),
            status=404,
        )
        return await self.respond(request, frame)

    # --- home ---------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        host, product = self.host, self.product
        cp = host.settings.context_path
        apps = []
        for installation in host.installations.values():
            links = [
                f'<a href="{attr(page_module_path(host, module.app_key, module.key))}">'
                f"{escape(module.name)}</a>"
                for module in app_modules(installation)
                if module.type in PAGE_TYPES
            ]
            state = "" if installation.enabled else ' <span class="cd-lozenge">disabled</span>'
            apps.append(
                f"<li><strong>{escape(installation.name)}</strong>{state} "
                f'<code>{escape(installation.key)}</code><div class="cd-links">'
                f"{' · '.join(links) or '<span class=cd-muted>no pages</span>'}</div></li>"
            )
        apps_html = (
            f'<ul class="cd-list">{"".join(apps)}</ul>'
            if apps
            else '<p class="cd-muted">No apps installed yet. Install one with '
            "<code>connect-dev up</code> (or through UPM at "
            f"<code>{escape(host.upm_url)}</code>).</p>"
        )
        if host.settings.product == "jira":
            items = "".join(
                f'<li><a href="{cp}/browse/{attr(issue.key)}">{escape(issue.key)}</a> '
                f"{escape(issue.summary)} "
                f'<span class="cd-lozenge">{escape(issue.status)}</span></li>'
                for issue in product.issues.values()
            )
            work = f'<h2>Issues</h2><ul class="cd-list">{items}</ul>'
        else:
            items = "".join(
                f'<li><a href="{attr(confluence_page_path(cp, page))}">{escape(page.title)}</a>'
                f' <span class="cd-muted">in {escape(page.space_key)}</span></li>'
                for page in product.pages.values()
                if page.status == "current"
            )
            work = f'<h2>Pages</h2><ul class="cd-list">{items}</ul>'
        content = (
            "<h1>Your work</h1>"
            f'<p class="cd-muted">An emulated {escape(host.settings.product.capitalize())} at '
            f"<code>{escape(host.base_url)}</code>: apps installed here render where the "
            "product would render them.</p>"
            f'<div class="cd-columns"><section class="cd-card"><h2>Installed apps</h2>'
            f'{apps_html}</section><section class="cd-card">{work}</section></div>'
        )
        frame = Frame(title="Your work", content=content, user=viewer(host, request))
        return await self.respond(request, frame)

    # --- Manage apps --------------------------------------------------------------------------

    async def manage_apps(self, request: web.Request) -> web.Response:
        host = self.host
        product = host.settings.product
        rows = []
        for installation in host.installations.values():
            modules = app_modules(installation)
            configure = next((m for m in modules if m.type == "configurePage"), None)
            button = (
                f'<a class="cd-button" href="'
                f'{attr(page_module_path(host, installation.key, configure.key))}">Configure</a>'
                if configure is not None and installation.enabled
                else ""
            )
            where = "".join(
                f"<li><code>{escape(m.type)}</code> {escape(m.name)}: {escape(m.where(product))}"
                "</li>"
                for m in modules
            )
            rows.append(
                f"<tr><td>{escape(installation.name)}</td>"
                f"<td><code>{escape(installation.key)}</code></td>"
                f"<td>{escape(installation.version)}</td>"
                f"<td>{'enabled' if installation.enabled else 'DISABLED'}</td>"
                f'<td><a href="{attr(installation.plugin_uri)}">{escape(installation.plugin_uri)}'
                f"</a></td><td>{button}</td></tr>"
                f'<tr class="cd-modules"><td colspan="6"><ul>{where}</ul></td></tr>'
            )
        table = (
            '<table class="cd-table"><tr><th>App</th><th>Key</th><th>Version</th><th>State</th>'
            f"<th>Installed from</th><th></th></tr>{''.join(rows)}</table>"
            if rows
            else "<p>No user-installed apps.</p>"
        )
        content = (
            "<h1>Manage apps</h1>"
            f'<p class="cd-muted">Emulated {escape(product.capitalize())} at '
            f"{escape(host.base_url)} (connect-dev host).</p>{table}"
        )
        sidebar = admin_sidebar(host, f"{host.settings.context_path}{MANAGE_APPS_PATH}")
        frame = Frame(
            title="Manage apps", content=content, user=viewer(host, request), sidebar=sidebar
        )
        return await self.respond(request, frame)

    # --- page modules -------------------------------------------------------------------------

    async def page_module(self, request: web.Request) -> web.Response:
        host = self.host
        app_key, module_key = request.match_info["app"], request.match_info["module"]
        found = find_module(host.installations, app_key, module_key)
        if found is None or found[1].type not in PAGE_TYPES:
            return await self.not_found(
                request, f"No enabled app {app_key} with a page {module_key}."
            )
        installation, module = found
        variables, passed = split_query(request.query)
        frame = Frame(
            title=module.name, content="", user=viewer(host, request), variables=variables
        )
        slot = self.slot_html(frame, installation, module, variables, passed=passed)
        heading = f"<h1>{escape(module.name)}</h1>"
        frame.content = (
            f'<div class="cd-page-module" data-app="{attr(app_key)}">{heading}{slot}</div>'
        )
        if module.type in ("adminPages", "configurePage"):
            frame.sidebar = admin_sidebar(host, request.path)
        return await self.respond(request, frame)

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        """A web item's app link, signed now: 302 to the app's URL with a fresh JWT."""
        found = find_module(
            self.host.installations, request.match_info["app"], request.match_info["module"]
        )
        if found is None or found[1].type != "webItems" or not found[1].url:
            return await self.not_found(request, "No such app link.")
        installation, module = found
        variables, passed = split_query(request.query)
        user = viewer(self.host, request)
        target = iframe_url(
            self.host,
            installation,
            module.key,
            module.url,
            with_user(variables, user),
            extra_params=passed,
            account_id=user.account_id,
        )
        raise web.HTTPFound(target)

    # --- Jira: the issue page -----------------------------------------------------------------

    async def issue(self, request: web.Request) -> web.Response:
        product = self.product
        issue = product.issue(request.match_info["key"])
        if issue is None:
            return await self.not_found(request, f"No issue {request.match_info['key']}.")
        return await self.respond(request, self.issue_frame(viewer(self.host, request), issue))

    def issue_frame(self, user: User, issue: Issue) -> Frame:
        host, product = self.host, self.product
        cp = host.settings.context_path
        variables = issue_variables(product, issue)
        frame = Frame(
            title=f"[{issue.key}] {issue.summary}", content="", user=user, variables=variables
        )
        menu: list[str] = []
        quick_add: list[str] = []
        left: list[str] = []
        right: list[str] = []
        glances: list[str] = []
        for installation, module in self.enabled_modules():
            if module.type == "webItems" and module.web_item_menu("jira") == "issue":
                menu.append(web_item_html(host, module, variables))
            elif module.type == "webPanels" and module.location in (ISSUE_LEFT, ISSUE_RIGHT):
                panel = (
                    f'<section class="cd-panel" data-module="{attr(module.key)}">'
                    f"<h3>{escape(module.name)}</h3>"
                    f"{self.slot_html(frame, installation, module, variables)}</section>"
                )
                (left if module.location == ISSUE_LEFT else right).append(panel)
            elif module.type == "jiraIssueContents":
                quick_add.append(self.lazy_button(module, "cd-quick-add", "issue-contents"))
            elif module.type == "jiraIssueGlances":
                label = _glance_label(module)
                glances.append(
                    self.lazy_button(
                        module,
                        "cd-glance",
                        "issue-glance",
                        extra=f'<span class="cd-glance-label">{escape(label)}</span>'
                        if label
                        else "",
                    )
                )
        project = product.project(issue.project_key)
        reporter = product.user(issue.reporter_account_id)
        assignee = product.user(issue.assignee_account_id)
        comments = "".join(
            f"<li><strong>{escape(_name(product, c.author_account_id))}</strong> "
            f"{escape(c.body)}</li>"
            for c in issue.comments
        )
        fire_buttons = "".join(
            f'<button type="button" class="cd-button" data-cd-fire="{attr(event)}" '
            f'data-cd-app="{attr(app_key)}" data-cd-issue="{attr(issue.key)}">'
            f"Fire <code>{escape(event)}</code> to {escape(app_key)}</button> "
            for app_key, events in host.webhooks.declared_events().items()
            if host.installations[app_key].enabled
            for event in events
            if event in host.webhooks.events
        )
        webhooks = (
            '<section class="cd-card cd-webhooks"><h3>Webhooks</h3>'
            f'<p class="cd-muted">Send an event about {escape(issue.key)} now.</p>'
            f'{fire_buttons}<ul class="cd-list" id="cd-webhook-deliveries"></ul></section>'
            if fire_buttons
            else ""
        )
        apps_menu = (
            '<details class="cd-menu cd-issue-menu"><summary>Apps</summary><ul>'
            + "".join(f"<li>{item}</li>" for item in menu)
            + "</ul></details>"
            if menu
            else ""
        )
        frame.content = (
            f'<nav class="cd-crumbs"><a href="{cp}/">Projects</a> / '
            f"{escape(project.name if project else issue.project_key)} / "
            f'<a href="{cp}/browse/{attr(issue.key)}">{escape(issue.key)}</a></nav>'
            f'<div class="cd-issue"><div class="cd-issue-main">'
            f'<h1 id="summary">{escape(issue.summary)}</h1>'
            f'<div class="cd-toolbar">{"".join(quick_add)}{apps_menu}</div>'
            '<div id="issue-contents"></div>'
            f"<h3>Description</h3><p>{escape(issue.description or 'No description.')}</p>"
            + "".join(left)
            + f'<h3>Activity</h3><ul class="cd-list">{comments or "<li>No comments.</li>"}</ul>'
            '</div><aside class="cd-issue-side">'
            f'<span class="cd-status">{escape(issue.status)}</span>'
            '<dl class="cd-details">'
            f"<dt>Type</dt><dd>{escape(issue.issue_type)}</dd>"
            f"<dt>Assignee</dt><dd>{escape(assignee.display_name if assignee else 'Unassigned')}"
            f"</dd><dt>Reporter</dt><dd>{escape(reporter.display_name if reporter else '')}</dd>"
            f"<dt>Labels</dt><dd>{escape(', '.join(issue.labels) or 'None')}</dd></dl>"
            + "".join(glances)
            + '<div id="issue-glance"></div>'
            + "".join(right)
            + webhooks
            + "</aside></div>"
        )
        return frame

    def lazy_button(self, module: Module, css_class: str, target: str, extra: str = "") -> str:
        """A button that opens the module's iframe in the element ``target`` (site.js asks the
        site for its URL when it is clicked, as the products sign it when it opens)."""
        icon = module.raw.get("icon")
        icon_url = icon.get("url") if isinstance(icon, dict) else None
        image = ""
        if isinstance(icon_url, str) and icon_url:
            found = self.host.installations.get(module.app_key)
            base = found.base_url.rstrip("/") if found else ""
            src = icon_url if "://" in icon_url else base + "/" + icon_url.lstrip("/")
            image = f'<img src="{attr(src)}" alt="" width="16" height="16">'
        tooltip = module.raw.get("tooltip")
        title = tooltip.get("value") if isinstance(tooltip, dict) else None
        return (
            f'<button type="button" class="{css_class}" data-ac-open="{attr(target)}" '
            f'data-ac-app="{attr(module.app_key)}" data-ac-key="{attr(module.key)}"'
            + (f' title="{attr(title)}"' if isinstance(title, str) else "")
            + f">{image}<span>{escape(module.name)}</span>{extra}</button>"
        )

    # --- Confluence: a page -------------------------------------------------------------------

    async def confluence_page(self, request: web.Request) -> web.Response:
        product = self.product
        page = product.page(request.match_info["page"])
        if page is None or page.space_key != request.match_info["space"]:
            return await self.not_found(request, f"No page {request.match_info['page']}.")
        frame = await self.confluence_frame(viewer(self.host, request), page)
        return await self.respond(request, frame)

    async def view_page(self, request: web.Request) -> web.StreamResponse:
        """Server's ``/pages/viewpage.action?pageId=N`` (``AP.navigator.go("contentview")``)."""
        page = self.product.page(request.query.get("pageId", ""))
        if page is None:
            return await self.not_found(request, "No such page.")
        raise web.HTTPFound(confluence_page_path(self.host.settings.context_path, page))

    async def space(self, request: web.Request) -> web.StreamResponse:
        space = self.product.spaces.get(request.match_info["space"])
        home = self.product.page(space.homepage_id) if space and space.homepage_id else None
        if home is None:
            return await self.not_found(request, f"No space {request.match_info['space']}.")
        raise web.HTTPFound(confluence_page_path(self.host.settings.context_path, home))

    async def confluence_frame(self, user: User, page: Page) -> Frame:
        host, product = self.host, self.product
        cp = host.settings.context_path
        variables = page_variables(product, page)
        frame = Frame(title=page.title, content="", user=user, variables=variables)
        macros: dict[str, tuple[Installation, Module]] = {}
        menu = []
        for installation, module in self.enabled_modules():
            if module.type in ("staticContentMacros", "dynamicContentMacros"):
                macros.setdefault(module.key, (installation, module))
            elif module.type == "webItems" and module.web_item_menu("confluence") == "content":
                menu.append(web_item_html(host, module, variables))
        # Macros the page's storage format uses, in place; then every other macro of the
        # installed apps once, with its default parameters (the emulator's showcase).
        uses = uses_in_body(page.body, macros)
        used = {use.module.key for use in uses}
        showcase = [
            MacroUse(installation, module, default_parameters(module), "", None)
            for installation, module in macros.values()
            if module.key not in used
        ]
        rendered = await asyncio.gather(
            *(self.macro_html(frame, page, use, index) for index, use in enumerate(uses + showcase))
        )
        body = page.body
        for use, html in zip(uses, rendered, strict=False):
            assert use.source is not None
            body = body.replace(use.source, html, 1)
        extra = rendered[len(uses) :]
        space = product.spaces.get(page.space_key)
        apps_menu = (
            '<details class="cd-menu cd-issue-menu"><summary>Apps</summary><ul>'
            + "".join(f"<li>{item}</li>" for item in menu)
            + "</ul></details>"
            if menu
            else ""
        )
        frame.content = (
            f'<nav class="cd-crumbs"><a href="{cp}/">Spaces</a> / '
            f"{escape(space.name if space else page.space_key)}</nav>"
            f'<article class="cd-page"><div class="cd-toolbar">{apps_menu}</div>'
            f'<h1 id="title">{escape(page.title)}</h1>'
            f'<p class="cd-muted">Version {page.version}</p>'
            f'<div class="cd-page-body">{body}</div>'
            + (
                '<section class="cd-showcase"><h2>Macros of the installed apps</h2>'
                '<p class="cd-muted">Each macro the page does not use itself, with its default '
                "parameters (the emulator's showcase).</p>" + "".join(extra) + "</section>"
                if extra
                else ""
            )
            + "</article>"
        )
        return frame

    async def macro_html(self, frame: Frame, page: Page, use: MacroUse, index: int) -> str:
        module = use.module
        variables = {
            **frame.variables,
            **use.parameters,
            "macro.id": f"{page.id}-{index}",
            "macro.hash": f"{page.id}-{index}",
            "macro.body": use.body,
            "macro.truncated": "false",
            "output.type": "display",
        }
        inline = module.raw.get("outputType") == "inline"
        tag = "span" if inline else "div"
        label = f'<{tag} class="cd-macro-name">{escape(module.name)}</{tag}>'
        if module.type == "staticContentMacros":
            user = frame.user
            content = await render_static_macro(
                self.host, use.installation, module, with_user(variables, user), user.account_id
            )
        else:
            content = self.slot_html(frame, use.installation, module, variables)
        kind = "static" if module.type == "staticContentMacros" else "dynamic"
        return (
            f'<{tag} class="cd-macro cd-{kind}" data-macro="{attr(module.key)}">'
            f"{label}{content}</{tag}>"
        )


def confluence_page_path(context_path: str, page: Page) -> str:
    return f"{context_path}/spaces/{page.space_key}/pages/{page.id}"


def _glance_label(module: Module) -> str:
    content = module.raw.get("content")
    if isinstance(content, dict):
        label = content.get("label")
        if isinstance(label, dict) and isinstance(label.get("value"), str):
            return str(label["value"])
    return ""


def _name(product: Product, account_id: str) -> str:
    user = product.user(account_id)
    return user.display_name if user else account_id

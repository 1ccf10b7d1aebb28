"""What ``@forge/manifest`` 13.7.0 accepts in the Connect parts of a manifest, copied from the
package so that connect-devloop checks a manifest without Node (tests/test_forge_manifest.py
compares every table here with the installed package).

- ``CONNECT_MODULES``: each ``connectModules`` key, ``<product>:<module type>``, as
  ``SUPPORTED_MODULES`` in ``out/types/module-types.js`` lists it (with a ``connect-`` prefix),
  and the fields each module of that type must have. The fields are those the schema
  (``out/schema/manifest-schema.json``) requires of the same module under
  ``modules: connect-<product>:<type>``; offline validation does not look into
  ``connectModules`` bodies at all, Cloud checks them when the app is installed.
- ``CONNECT_SCOPES``: the Connect scopes among Forge's (``out/scopes/shipyard-scopes.json``).
- The rest: patterns, lengths and names from the schema. The patterns are the schema's without
  ``^`` and ``$``, for ``fullmatch``: Python's ``$`` also matches before a final newline,
  JavaScript's does not.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "APP_CONNECT_KEYS",
    "APP_ID_PATTERN",
    "APP_KEYS",
    "CONNECT_KEY_MAX_LENGTH",
    "CONNECT_KEY_PATTERN",
    "CONNECT_MODULES",
    "CONNECT_SCOPES",
    "FORGE_MANIFEST_VERSION",
    "MODULE_KEY_PATTERN",
    "PRODUCTS",
    "REGIONS",
    "REMOTE_KEYS",
    "REMOTE_KEY_MAX_LENGTH",
    "REMOTE_KEY_PATTERN",
    "REQUIRED_APP_KEYS",
    "RUNTIMES",
    "TOP_LEVEL_KEYS",
    "VARIABLE_PATTERN",
]

FORGE_MANIFEST_VERSION: Final = "13.7.0"
PRODUCTS: Final = ("jira", "confluence")

# product -> module type (the descriptor's name, plural as there) -> required fields.
CONNECT_MODULES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "jira": {
        "adminPages": ("key", "name", "url"),
        "assetPanels": ("key", "name", "url"),
        "automationActions": ("key", "name", "webhook"),
        "cloudAppMigration": ("key",),
        "configurePage": ("key", "name", "url"),
        "dialogs": ("key", "url"),
        "generalPages": ("key", "name", "url"),
        "jiraBackgroundScripts": ("key", "location", "url"),
        "jiraBuildInfoProvider": ("key", "homeUrl", "name"),
        "jiraDashboardItems": ("key", "description", "name", "thumbnailUrl", "url"),
        "jiraDeploymentGating": ("key", "callback", "name"),
        "jiraDeploymentInfoProvider": ("key", "homeUrl", "name"),
        "jiraDevelopmentTool": ("key", "application", "capabilities", "logoUrl", "name", "url"),
        "jiraDevOpsComponentProvider": ("key", "homeUrl", "name"),
        "jiraEntityProperties": ("key", "name"),
        "jiraFeatureFlagInfoProvider": ("key", "homeUrl", "name"),
        "jiraGlobalPermissions": ("key", "description", "name"),
        "jiraIssueContents": ("key", "icon", "name", "target", "tooltip"),
        "jiraIssueContexts": ("key", "content", "icon", "name", "target"),
        "jiraIssueFields": ("key", "description", "name", "type"),
        "jiraIssueGlances": ("key", "content", "icon", "name", "target"),
        "jiraIssueTabPanels": ("key", "name", "url"),
        "jiraIssueTypes": ("key", "description", "name", "type"),
        "jiraJqlFunctions": ("key", "arguments", "name", "operators", "types", "url"),
        "jiraOperationsInfoProvider": ("key", "homeUrl", "name"),
        "jiraProjectAdminTabPanels": ("key", "name", "url"),
        "jiraProjectPages": ("key", "name", "url"),
        "jiraProjectPermissions": ("key", "description", "name"),
        "jiraProjectTabPanels": ("key", "name", "url"),
        "jiraRemoteLinkInfoProvider": ("key", "homeUrl", "name"),
        "jiraReports": ("key", "description", "name", "url"),
        "jiraSearchRequestViews": ("key", "name", "url"),
        "jiraSecurityInfoProvider": ("key",),
        "jiraTimeTrackingProviders": ("key", "name"),
        "jiraWorkflowConditions": ("key", "expression", "name"),
        "jiraWorkflowPostFunctions": ("key", "name", "triggered"),
        "jiraWorkflowValidators": ("key", "errorMessage", "expression", "name"),
        "keyboardShortcuts": ("key", "name", "shortcut", "target"),
        "lifecycle": ("key",),
        "postInstallPage": ("key", "name", "url"),
        "serviceDeskOrganizationActions": ("key", "name"),
        "serviceDeskOrganizationPanels": ("key", "url"),
        "serviceDeskPortalFooters": ("key", "url"),
        "serviceDeskPortalHeaders": ("key", "url"),
        "serviceDeskPortalProfileActions": ("key", "name", "url"),
        "serviceDeskPortalProfilePanels": ("key", "url"),
        "serviceDeskPortalRequestCreatePropertyPanels": ("key", "url"),
        "serviceDeskPortalRequestViewActions": ("key", "name", "url"),
        "serviceDeskPortalRequestViewDetailsPanels": ("key", "url"),
        "serviceDeskPortalRequestViewPanels": ("key", "url"),
        "serviceDeskPortalSubHeaders": ("key", "url"),
        "serviceDeskPortalUserMenuActions": ("key", "name", "url"),
        "serviceDeskQueueGroups": ("key", "name"),
        "serviceDeskQueues": ("key", "name"),
        "serviceDeskReportGroups": ("key", "name"),
        "serviceDeskReports": ("key", "name"),
        "translations": ("key",),
        "webhooks": ("key", "event", "url"),
        "webItems": ("key", "location", "name"),
        "webPanels": ("key", "location", "name", "url"),
        "webSections": ("key", "location", "name"),
    },
    "confluence": {
        "adminPages": ("key", "name", "url"),
        "blueprints": ("key", "name", "template"),
        "cloudAppMigration": ("key",),
        "configurePage": ("key", "name", "url"),
        "confluenceContentProperties": ("key", "name"),
        "confluenceThemes": ("key", "name"),
        "contentBylineItems": ("key", "name"),
        "customContent": ("key", "apiSupport", "name", "uiSupport"),
        "dialogs": ("key", "url"),
        "dynamicContentMacros": ("key", "name", "url"),
        "generalPages": ("key", "name", "url"),
        "keyboardShortcuts": ("key", "name", "shortcut", "target"),
        "lifecycle": ("key",),
        "postInstallPage": ("key", "name", "url"),
        "publishConditions": ("key", "errorMessage", "name"),
        "spaceToolsTabs": ("key", "name", "url"),
        "staticContentMacros": ("key", "name", "url"),
        "translations": ("key",),
        "webhooks": ("key", "event", "url"),
        "webItems": ("key", "location", "name"),
        "webPanels": ("key", "location", "name", "url"),
        "webSections": ("key", "location", "name"),
    },
}

CONNECT_SCOPES: Final[dict[str, frozenset[str]]] = {
    "jira": frozenset(
        {
            "access-email-addresses:connect-jira",
            "act-as-user:connect-jira",
            "admin:connect-jira",
            "delete:connect-jira",
            "project-admin:connect-jira",
            "read:connect-jira",
            "write:connect-jira",
        }
    ),
    "confluence": frozenset(
        {
            "access-email-addresses:connect-confluence",
            "act-as-user:connect-confluence",
            "admin:connect-confluence",
            "delete:connect-confluence",
            "read:connect-confluence",
            "space-admin:connect-confluence",
            "write:connect-confluence",
        }
    ),
}

TOP_LEVEL_KEYS: Final = (
    "app",
    "connectModules",
    "modules",
    "permissions",
    "resources",
    "remotes",
    "providers",
    "environment",
    "translations",
    "services",
    "overrides",
)
APP_KEYS: Final = (
    "description",
    "id",
    "runtime",
    "compatibility",
    "access",
    "licensing",
    "features",
    "connect",
    "storage",
    "package",
)
REQUIRED_APP_KEYS: Final = ("id", "runtime")
APP_ID_PATTERN: Final = re.compile(r"ari:cloud:ecosystem::app/[^\s]+")  # unanchored, as there
RUNTIMES: Final = ("nodejs20.x", "nodejs22.x", "nodejs24.x")
APP_CONNECT_KEYS: Final = ("key", "remote", "authentication")
CONNECT_KEY_PATTERN: Final = re.compile(r"[a-zA-Z0-9-._]+")
CONNECT_KEY_MAX_LENGTH: Final = 90
REMOTE_KEYS: Final = ("key", "baseUrl", "operations", "auth", "storage", "configurable")
REMOTE_KEY_PATTERN: Final = re.compile(r"[a-zA-Z0-9_-]+")
REMOTE_KEY_MAX_LENGTH: Final = 23
# The region names a remote's baseUrl may map (besides "default", which it must have).
REGIONS: Final = ("EU", "US", "AU", "DE", "SG", "CA", "IN", "KR", "JP", "GB", "CH")
MODULE_KEY_PATTERN: Final = re.compile(r"[a-zA-Z0-9_-]+")
VARIABLE_PATTERN: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

"""What the emulated Forge CLI prints: the real CLI's messages word for word, and its way of
printing them when stdout is not a terminal (no colour, no spinner).

The texts are read from ``@forge/cli-shared`` 13.3.0 (``out/ui/text.js``) and checked against
the real CLI's output where it runs offline; chalk's bold and terminal links print as plain
text without a terminal. ``Console`` follows ``out/ui/command-line-ui.js``: everything goes to
stdout, errors as a blank line, ``Error: <message>`` and a blank line, and lines printed
inside a progress step get a symbol and one blank line before the first of them.
"""

from __future__ import annotations

import sys
from typing import Final, TextIO

from .standin_argv import FORGE_CLI_VERSION

__all__ = ["LABEL", "Console", "Text"]

LABEL: Final = (
    f"[connect-devloop] Forge CLI EMULATION: a stand-in for @forge/cli {FORGE_CLI_VERSION} that "
    "talks to the emulated host, not to Atlassian"
)
SUCCESS, INFO, WARNING = "\u2714", "\u2139", "\u26a0"
ENVIRONMENT_OPTIONS: Final = {"default": "development"}


def environment_option(key: str) -> str:
    """The name a user types for an environment key: ``default`` is ``development``."""
    return ENVIRONMENT_OPTIONS.get(key, key)


def environment_key(option: str) -> str:
    return "default" if option == "development" else option


def display_environment(key: str, environment_type: str) -> str:
    # Text.env.displayEnvironment: custom development environments get a DEV tag.
    if environment_type == "DEVELOPMENT" and key not in ("default", "development"):
        return f"DEV {environment_option(key)}"
    return environment_option(key)


def _go(link: str) -> str:
    return f"https://go.atlassian.com/{link}"


class Text:
    """The messages of ``Text`` in @forge/cli-shared 13.3.0 the stand-in prints."""

    RERUN_VERBOSE: Final = "Rerunning the command with --verbose may give more details."
    INVALID_COMMAND_HELP: Final = "Run forge --help to see the full list of available commands."
    NOT_LOGGED_IN: Final = (
        "Not logged in. If a local keychain is available, run forge login, otherwise set "
        "environment variables before trying again. See "
        f"{_go('dac/platform/forge/getting-started/#log-in-with-an-atlassian-api-token')} "
        "for more."
    )
    INVALID_TOKEN_IN_ENV: Final = (
        "The API token on your machine is no longer valid."
        "\n    1) Get a new API token: https://go.atlassian.com/forge-cli-api-token"
        "\n    2) Set your email and the token to FORGE_EMAIL and FORGE_API_TOKEN environment "
        "variables."
    )
    MISSING_ANALYTICS: Final = (
        "--non-interactive requires an analytics setting. Use forge settings set "
        "usage-analytics <value>."
    )
    ANALYTICS_PROMPT: Final = (
        "We are continuously working to improve the developer experience in Forge. CLI usage "
        "helps us do just that. Select yes below to agree to our collection of analytics data "
        "through our tools. You can use forge settings to manage your settings at any time."
    )
    PROMPT_WITHOUT_TTY: Final = "Prompts can not be meaningfully rendered in non-TTY environments"
    VALIDATION_FAILED: Final = "Command failed due to validation error."
    MISSING_MANIFEST: Final = (
        "To run this command, make sure you're in the top-level directory of your app, and the "
        "manifest.yml file is in the same directory."
    )
    INVALID_ENVIRONMENT: Final = "Invalid environment name"
    ENVIRONMENT_REQUIRED_WITH_OVERRIDE: Final = (
        "You must specify an environment using --environment when using --app-id-override."
    )
    MISSING_PRODUCT_VALUE: Final = (
        "Parameter requires an Atlassian app name. Rerun the command with a valid Atlassian "
        "app name."
    )
    INVALID_PRODUCT: Final = (
        "Invalid Atlassian app. Rerun forge install with a valid Atlassian app."
    )
    MISSING_SITE_VALUE: Final = (
        "Site parameter requires a site URL. Rerun the command with a valid site URL."
    )
    INVALID_SITE: Final = (
        "The site you entered is not an Atlassian site. Rerun the command with the URL to an "
        "Atlassian site to install the app."
    )
    INVALID_UPGRADE_TARGET: Final = 'You must specify either "all" or "code" as the upgrade target.'
    INVALID_MAJOR_VERSION: Final = "Invalid major version number"
    APP_NOT_FOUND: Final = (
        "Your app could not be found. Make sure the app details in the manifest.yml file are "
        "correct before trying again."
    )
    INVALID_INSTALLATION_CONTEXT: Final = (
        "Could not find an installation for the provided Atlassian app"
    )
    ALREADY_INSTALLED: Final = (
        "Installation error: App is already installed.\nIf you're trying to upgrade your app, "
        "use the forge install --upgrade command."
    )
    NO_INSTALLATIONS: Final = (
        "The app is not installed anywhere.\nRun forge install to install your app on an "
        "Atlassian site.\n"
    )
    LIST_BANNER: Final = "\nShowing all the current installations of your app:"
    LINT_RUNNING: Final = "Running forge lint..."
    LINT_CLEAN: Final = "No issues found.\n"
    OUTDATED_INSTALLATIONS: Final = (
        "We've detected new scopes or egress URLs in your app.\nRun forge install --upgrade "
        "and restart your tunnel to put them into effect."
    )
    INSTALL_BANNER: Final = (
        "\nInstalling your app onto an Atlassian site.\nPress Ctrl+C to cancel.\n"
    )
    UPGRADE_BANNER: Final = "\nUpgrading your app on the Atlassian site.\n"
    ALREADY_LATEST: Final = "Site is already at the latest version"
    UNINSTALLING: Final = "Uninstalling..."
    CTRL_C: Final = "Press Ctrl+C to cancel."

    @staticmethod
    def missing_required_option(command: str, flags: list[str]) -> str:
        return f"{command} --non-interactive requires {' '.join(flags)}"

    @staticmethod
    def missing_variable(name: str) -> str:
        return (
            f"manifest.yml failed to parse content - could not find environment variable '{name}'"
        )

    @staticmethod
    def invalid_atlassian_site(url: str) -> str:
        return (
            f"The URL you entered doesn't belong to an Atlassian site: \n{url} \n\n"
            "Run the command using a different URL."
        )

    @staticmethod
    def activation_missing(url: str, product: str) -> str:
        return (
            f"Atlassian app is not activated on {url}. Enable {product} in your suite or "
            "contact your administrator for assistance."
        )

    @staticmethod
    def no_deployment(environment: str) -> str:
        return (
            "Forge apps must be deployed before installation. Deploy your app by running "
            f"forge deploy -e {environment_option(environment)}."
        )

    @staticmethod
    def with_request_id(message: str, request_id: str) -> str:
        return (
            f"{message} For more help on this issue, please reach out to support "
            "(https://developer.atlassian.com/support) and provide them the following request "
            f"ID: {request_id}"
        )

    @staticmethod
    def failed_all(site_url: str, environment: str) -> str:
        return (
            f"Your app in {environment_option(environment)} was not installed on any Atlassian "
            f"apps on {site_url}."
        )

    @staticmethod
    def partial_installation(products: list[str]) -> str:
        return (
            f"Failed to install into the following Atlassian apps: {', '.join(products)}. "
            "Run forge install again to reattempt this installation."
        )

    @staticmethod
    def deploy_start(environment: str, environment_type: str) -> str:
        where = display_environment(environment, environment_type)
        return f"Deploying your app to the {where} environment.\nPress Ctrl+C to cancel.\n"

    @staticmethod
    def deploy_progress(app_name: str, environment: str, environment_type: str) -> str:
        return f"Deploying {app_name} to {display_environment(environment, environment_type)}..."

    @staticmethod
    def deployed(app_name: str, environment: str, environment_type: str) -> str:
        where = display_environment(environment, environment_type)
        return f"Deployed {app_name} to the {where} environment."

    @staticmethod
    def environment_created(environment: str) -> str:
        return f"Created {display_environment(environment, 'DEVELOPMENT')}"

    @staticmethod
    def major_version_warning(major: int) -> str:
        return (
            f"Warning: You're about to deploy changes to major version {major} of your app. All "
            f"sites using version {major} will automatically apply these changes.\n"
        )

    @staticmethod
    def connect_key_change(environment: str, old: str, new: str) -> str:
        return (
            f"WARNING: Changing the app.connect.key in {environment_option(environment)} from "
            f"'{old}' to '{new}' affects features using the Connect key as an identifier. "
            f"\nLearn more about the impact of this change at {_go('forge-connect-key-changes')}.\n"
        )

    @staticmethod
    def scopes(scopes: list[str], *, upgrade: bool) -> str:
        # "will upgraded with" is the real CLI's wording.
        what = (
            "upgraded with the following additional"
            if upgrade
            else "be installed with the following"
        )
        return f"Your app will {what} scopes:\n" + "\n".join(f"- {s}" for s in scopes) + "\n"

    @staticmethod
    def egress(addresses: list[str], *, upgrade: bool) -> str:
        what = "be upgraded and additionally exchange" if upgrade else "exchange"
        lines = "\n".join(f"- {a}" for a in addresses)
        return f"Your app will {what} data with the following urls:\n{lines}\n"

    @staticmethod
    def permissions_mismatch(environment: str, *, upgrade: bool) -> str:
        option = environment_option(environment)
        return (
            "The scopes or egress URLs in the manifest are different from the scopes in your "
            f"most recent deployment to {option}. Try running forge deploy -e {option} before "
            f"{'upgrading' if upgrade else 'installing'}.\n"
        )

    @staticmethod
    def install_progress(environment: str, environment_type: str, product: str) -> str:
        where = display_environment(environment, environment_type)
        return f"Installing your app in {product} on to {where}..."

    @staticmethod
    def upgrade_progress(environment: str, environment_type: str) -> str:
        return f"Upgrading your app in {display_environment(environment, environment_type)}..."

    @staticmethod
    def installed(environment: str, environment_type: str, product: str, site: str) -> str:
        where = display_environment(environment, environment_type)
        return (
            f"Your app in the {where} environment is now installed in {product} on {site}. You "
            "can install the app into other Atlassian apps by running the forge install command "
            "again."
        )

    @staticmethod
    def upgraded(environment: str, environment_type: str, product: str, site: str) -> str:
        where = display_environment(environment, environment_type)
        return f"Your app in the {where} environment is now the latest in {product} on {site}."

    @staticmethod
    def at_latest(environment: str, product: str, site: str) -> str:
        return (
            f"\nYour app in the {environment_option(environment)} environment is at the latest "
            f"in {product} on {site}."
        )

    @staticmethod
    def uninstalled(product: str, site: str, environment: str) -> str:
        return (
            f"{SUCCESS} Uninstalled from the {environment_option(environment)} environment in "
            f"{product} on {site}."
        )


class Console:
    """``CommandLineUI`` without a terminal: plain lines on ``stream`` (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._in_progress = False
        self._padded = False

    def line(self, text: str = "", *, kind: str = "other") -> None:
        if self._in_progress and (
            (kind == "other" and not self._padded) or (kind == "success" and self._padded)
        ):
            # The first line printed inside a progress step is set off by a blank line.
            text = "\n" + text
            self._padded = True
        print(text, file=self.stream, flush=True)

    def info(self, message: str) -> None:
        self.line(f"{INFO} {message}" if self._in_progress else message)

    def warn(self, message: str) -> None:
        self.line(f"{WARNING} {message}" if self._in_progress else message)

    def error(self, message: str, *, pad: bool = True) -> None:
        text = f"\nError: {message}\n"
        self.line(text if pad else text.strip())

    def start(self, text: str) -> None:
        self._in_progress, self._padded = True, False
        self.line(text, kind="start")

    def succeed(self, text: str) -> None:
        self.line(f"{SUCCESS} {text}", kind="success")
        self._in_progress = False

    def stop(self) -> None:
        """A progress step that ends in an error prints nothing more of its own."""
        self._in_progress = False

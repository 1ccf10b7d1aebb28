"""How the emulated Forge CLI reads ``manifest.yml``: the checks the real CLI runs on it before
any command (``verifyManifestExistsWithAppConfig``), with the real lint report, and the
``${VARIABLE}`` resolution ``forge deploy`` applies."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .manifest_schema import APP_ID_PATTERN, REQUIRED_APP_KEYS
from .standin_text import Console, Text

__all__ = ["ManifestRefused", "read_manifest"]

VARIABLE: Final = re.compile(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


class ManifestRefused(Exception):
    """The real CLI's lint refused the manifest; its report is printed already."""


@dataclass(frozen=True)
class LintProblem:
    line: int
    column: int
    message: str
    reference: str

    def format(self) -> str:
        # @forge/lint's reportLintResults line; the trailing newline is its own.
        return f"{f'{self.line}:{self.column}':<7} error    {self.message}  {self.reference}\n"


def read_manifest(path: Path, environ: Mapping[str, str], console: Console) -> dict[str, Any]:
    """``manifest.yml`` as ``forge deploy`` sees it, ``${VARIABLES}`` resolved, after the strict
    checks the real CLI runs before anything else (``verifyManifestExistsWithAppConfig``).
    Prints the real CLI's lint report and raises ``ManifestRefused`` when they fail."""
    problems: list[LintProblem] = []
    manifest: dict[str, Any] = {}
    if not path.is_file():
        problems.append(LintProblem(0, 0, Text.MISSING_MANIFEST, "manifest-file-required"))
    else:
        try:
            tree = YAML().load(path.read_text(encoding="utf-8"))
            manifest = _resolve_variables(_plain(tree), environ)
            problems = _app_problems(tree, manifest)
        except MarkedYAMLError as error:
            mark = error.problem_mark
            line, column = (mark.line + 1, mark.column) if mark is not None else (0, 0)
            message = f"manifest.yml failed to parse content - {error.problem}"
            problems.append(LintProblem(line, column, message, "valid-yaml-required"))
        except (YAMLError, UnicodeDecodeError) as error:
            message = f"manifest.yml failed to parse content - {error}"
            problems.append(LintProblem(0, 0, message, "valid-yaml-required"))
        except _MissingVariable as missing:
            message = Text.missing_variable(missing.name)
            problems.append(LintProblem(0, 0, message, "valid-yaml-required"))
    if problems:
        console.line()
        console.line(str(path.absolute()))
        for problem in sorted(problems, key=lambda p: (p.line, p.column)):
            console.line(problem.format())
        raise ManifestRefused(Text.VALIDATION_FAILED)
    return manifest


class _MissingVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _resolve_variables(manifest: Any, environ: Mapping[str, str]) -> Any:
    """``${NAME}`` in every string value, for the names ``environment.variables`` declares, from
    ``environ`` or the declared default, as @forge/manifest 13.3.0's
    EnvironmentVariableInterpolator does: undeclared names stay as written, keys are not
    touched, a replaced value is not scanned again, and a declared name with neither a value nor
    a default is an error. (connect_devloop/forge/manifest.py is to have a ``resolve_variables``
    of its own; this one could then go.)"""
    declared: dict[str, Any] = {}
    environment = manifest.get("environment") if isinstance(manifest, dict) else None
    variables = environment.get("variables") if isinstance(environment, dict) else None
    for item in variables if isinstance(variables, list) else []:
        if isinstance(item, str):
            declared[item] = None
        elif isinstance(item, dict) and isinstance(item.get("key"), str):
            declared[item["key"]] = item.get("default")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in declared:
            return match.group(0)
        value = environ.get(name, declared[name])
        if value is None:
            raise _MissingVariable(name)
        return _js_string(value)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return VARIABLE.sub(replace, node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    return walk(manifest)


def _js_string(value: object) -> str:
    # What JavaScript's String() makes of a default that is not a string.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _app_problems(tree: Any, manifest: Any) -> list[LintProblem]:
    """The schema checks of ``app.id`` the real lint makes (FULL validation of @forge/manifest
    checks far more; the emulation checks what a Connect-on-Forge manifest's id needs)."""
    if not isinstance(manifest, dict) or not isinstance(tree, CommentedMap):
        return [LintProblem(1, 0, "document must be object", "valid-document-required")]
    app, app_node = manifest.get("app"), tree.get("app")
    if not isinstance(app, dict) or not isinstance(app_node, CommentedMap):
        message = "document must have required property 'app'"
        return [LintProblem(1, 0, message, "valid-document-required")]
    line, column = _position(tree, "app")
    problems = [
        LintProblem(
            line, column, f"app must have required property '{key}'", "valid-document-required"
        )
        for key in REQUIRED_APP_KEYS
        if key not in app
    ]
    app_id = app.get("id")
    if "id" in app:
        line, column = _position(app_node, "id")
        if not isinstance(app_id, str):
            problems.append(
                LintProblem(
                    line, column, "app property id must be string", "valid-document-required"
                )
            )
        elif not APP_ID_PATTERN.search(app_id):
            message = f"app property id '{app_id}' must match pattern \"{APP_ID_PATTERN.pattern}\""
            problems.append(LintProblem(line, column, message, "valid-document-required"))
    return problems


def _position(node: CommentedMap, key: str) -> tuple[int, int]:
    # The key's line (1-based) and column (0-based), as the real lint prints them.
    line, column = node.lc.key(key)
    return int(line) + 1, int(column)


def _plain(tree: Any) -> Any:
    return json.loads(json.dumps(tree, default=str))

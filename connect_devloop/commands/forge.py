"""``connect-dev forge``: Connect apps registered on Forge (docs/forge.md).

- ``forge convert [DESCRIPTOR] [-o manifest.yml] [--product jira|confluence] [--json]`` writes or
  updates ``manifest.yml`` from the descriptor, without a question: only its Connect parts
  (forge/convert.py), then says what it wrote and what it could not carry, and why.

``validate_manifest_file`` is what ``connect-dev validate`` runs on a manifest: the offline checks
(forge/manifest.py) as lines like the descriptor's, then the adoption status as ``info:`` lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..config import Config
    from ..forge.convert import Conversion
    from ..forge.manifest import Manifest

__all__ = [
    "MANIFEST_FILE_NAME",
    "add_parsers",
    "manifest_to_validate",
    "project_manifest",
    "run_convert",
    "validate_manifest_file",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
MANIFEST_FILE_NAME = "manifest.yml"


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``forge`` and its commands to the ``connect-dev`` parser."""
    forge = commands.add_parser(
        "forge",
        help="Connect apps registered on Forge: write manifest.yml from the descriptor",
        description="Connect apps registered on Forge (docs/forge.md).",
    )
    forge_commands = forge.add_subparsers(title="forge commands", metavar="COMMAND")

    def forge_help(args: argparse.Namespace) -> int:
        del args
        forge.print_help()
        return EXIT_USAGE

    forge.set_defaults(command="forge", run=forge_help)

    convert = forge_commands.add_parser(
        "convert",
        help="write or update manifest.yml from atlassian-connect.json",
        description="Write the Connect parts of a Forge manifest (app.connect, the Connect "
        "remote, connectModules, the Connect scopes, the CONNECT_DEV_BASE_URL and "
        "CONNECT_DEV_APP_KEY variables) from a local descriptor, keeping everything else in an "
        "existing manifest. Says what it could not carry, and why.",
    )
    add_config(convert)
    convert.add_argument(
        "descriptor",
        nargs="?",
        metavar="DESCRIPTOR",
        help="descriptor file (default: from connect-dev.toml, else ./atlassian-connect.json)",
    )
    convert.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default=None,
        help="manifest to write or update (default: [forge] manifest of connect-dev.toml, else "
        "manifest.yml beside the descriptor)",
    )
    convert.add_argument(
        "--product",
        choices=("jira", "confluence"),
        default=None,
        help="the product the app is for (default: confluence when the descriptor has a "
        "Confluence-only module, else jira)",
    )
    convert.add_argument("--json", action="store_true", help="print one JSON object")
    convert.set_defaults(command="forge convert", run=run_convert)


# --- convert ------------------------------------------------------------------------------------


def run_convert(args: argparse.Namespace) -> int:
    from ..errors import DescriptorError, DevloopError
    from ..forge.convert import convert_file

    config, descriptor_path = _project(args.descriptor, args.config)
    output = Path(args.output) if args.output else project_manifest(config, descriptor_path)
    try:
        conversion, why = convert_file(descriptor_path, output, product=args.product)
    except DescriptorError as exc:
        if len(exc.problems) == 1 and exc.problems[0].line is None:
            raise  # not read at all: its message and hint say why
        for problem in exc.problems:
            print(problem.format(str(descriptor_path)), file=sys.stderr)
        count = len(exc.problems)
        raise DevloopError(
            f"{descriptor_path}: {count} error{'s' if count != 1 else ''}; "
            f"{output} was not written",
            hint="Fix the descriptor (`connect-dev validate` shows the same), then convert again.",
        ) from exc
    except OSError as exc:
        raise DevloopError(
            f"{output}: cannot write: {exc.strerror or exc}",
            hint="Check the permissions of that path and the directory it is in.",
        ) from exc
    if args.json:
        print(json.dumps(_conversion_json(conversion, output, why)))
    else:
        _print_conversion(conversion, output, why, sys.stdout)
    errors = [problem for problem in conversion.problems if problem.severity == "error"]
    return EXIT_FAILURE if errors else EXIT_OK


def _project(descriptor: str | None, config_path: str | None) -> tuple[Config | None, Path]:
    """The descriptor, found as `validate` finds it, and the config when that is where it was
    found (its ``[forge] manifest`` is then the default output)."""
    from ..config import CONFIG_FILE_NAME, find_config, load_config

    if descriptor is not None:
        return None, Path(descriptor)
    if config_path is not None or Path(CONFIG_FILE_NAME).is_file():
        config = load_config(find_config(config_path))
        return config, config.descriptor_path
    return None, Path("atlassian-connect.json")


def _conversion_json(conversion: Conversion, output: Path, why: str) -> dict[str, object]:
    parts = conversion.parts
    return {
        "path": str(output),
        "product": parts.product,
        "product_reason": why,
        "created": conversion.created,
        "changed": conversion.changed,
        "remote": conversion.remote_key,
        "modules": parts.module_count,
        "module_types": sorted(parts.modules),
        "scopes": list(parts.scopes),
        "variables": dict(parts.variables),
        "dropped": [item.to_dict() for item in parts.dropped],
        "problems": [problem.to_dict() for problem in conversion.problems],
    }


def _print_conversion(conversion: Conversion, output: Path, why: str, out: TextIO) -> None:
    from ..forge.manifest import APP_KEY_VARIABLE, BASE_URL_VARIABLE

    parts = conversion.parts
    if conversion.created:
        verb = "wrote"
    elif conversion.changed:
        verb = "updated"
    else:
        verb = "up to date:"
    source = "--product" if why == "--product" else f"guessed from {why}"
    print(f"{verb} {output}: {parts.product} ({source})", file=out)
    kinds = len(parts.modules)
    print(
        f"  connectModules: {parts.module_count} module{'s' if parts.module_count != 1 else ''} "
        f"of {kinds} type{'s' if kinds != 1 else ''}",
        file=out,
    )
    print(f"  scopes: {', '.join(parts.scopes) or 'none'}", file=out)
    defaults = dict(parts.variables)
    for name, role in (
        (BASE_URL_VARIABLE, f"baseUrl of remote {conversion.remote_key}"),
        (APP_KEY_VARIABLE, "app.connect.key"),
    ):
        default = defaults.get(name)
        value = f"default {default}" if default else "no default: set it for `forge deploy`"
        print(f"  ${{{name}}}: {role} ({value})", file=out)
    if parts.dropped:
        print("not carried:", file=out)
        for item in parts.dropped:
            print(f"  {item.path}: {item.reason}", file=out)
    for problem in conversion.problems:
        prefix = "" if problem.severity == "error" else f"{problem.severity}: "
        print(f"{prefix}{problem.format(str(output))}", file=out)


# --- validate -----------------------------------------------------------------------------------


def project_manifest(config: Config | None, descriptor_path: Path) -> Path:
    """The project's manifest: ``[forge] manifest`` of connect-dev.toml, else ``manifest.yml``
    beside the descriptor."""
    if config is not None and config.forge is not None:
        return config.forge.manifest
    return descriptor_path.parent / MANIFEST_FILE_NAME


def manifest_to_validate(config: Config | None, descriptor_path: Path) -> Path | None:
    """The manifest ``connect-dev validate`` checks with the descriptor: the one ``[forge]``
    names (even when it is missing: a Forge host needs it), else a ``manifest.yml`` beside
    connect-dev.toml or the descriptor, if there is one."""
    if config is not None and config.forge is not None:
        return config.forge.manifest
    directories = [config.project_dir] if config is not None else []
    for directory in (*directories, descriptor_path.parent):
        candidate = directory / MANIFEST_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def validate_manifest_file(path: Path, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``connect-dev validate`` for a manifest: one line per problem (errors plain, then
    ``warning:`` lines), the adoption status as ``info:`` lines, and ``ok`` or the error count
    last. Exit code 0 or 1."""
    from ..forge.manifest import ManifestError, adoption_status, check_manifest, load_manifest

    out = out or sys.stdout
    err = err or sys.stderr
    name = str(path)
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        for problem in exc.problems:
            print(problem.format(name), file=out)
        count = len(exc.problems)
        print(f"{name}: {count} error{'s' if count != 1 else ''}", file=err)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=err)
        return EXIT_FAILURE
    problems = check_manifest(manifest)
    errors = [problem for problem in problems if problem.severity == "error"]
    for problem in errors:
        print(problem.format(name), file=out)
    for problem in problems:
        if problem.severity != "error":
            print(f"{problem.severity}: {problem.format(name)}", file=out)
    status = adoption_status(manifest)
    for finding in status.findings:
        print(f"info: {finding.format(name)}", file=out)
    print(f"info: {name}: adoption status: {status.summary}", file=out)
    if errors:
        count = len(errors)
        print(f"{name}: {count} error{'s' if count != 1 else ''}", file=err)
        return EXIT_FAILURE
    print(f"{name}: ok: {_describe(manifest)}", file=out)
    return EXIT_OK


def _describe(manifest: Manifest) -> str:
    from ..forge.manifest import resolved_document

    document = resolved_document(manifest)
    app = document.get("app")
    connect = app.get("connect") if isinstance(app, dict) else None
    key = connect.get("key") if isinstance(connect, dict) else None
    modules = document.get("connectModules")
    count = (
        sum(len(entries) if isinstance(entries, list) else 1 for entries in modules.values())
        if isinstance(modules, dict)
        else 0
    )
    what = f"Connect app {key}" if isinstance(key, str) else "Forge app"
    return f"{what}, {count} Connect module{'s' if count != 1 else ''}"

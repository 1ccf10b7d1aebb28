"""The commands beside ``up``: one module per group, each adding its parsers to the CLI's.

``init.py`` (a commented connect-dev.toml), ``credentials.py`` (login, logout, token, open) and
``forge.py`` (forge convert, the manifest checks of ``validate``). Only ``cli`` imports them.
"""

"""The Textual dashboard of `connect-dev up`: one module per widget, fed only by events.

Nothing outside this package imports textual; ``cli`` imports ``run_dashboard`` lazily, only when
stdout is a terminal and neither ``--no-tui`` nor ``--log-format`` was given.
"""

from .app import DashboardApp, run_dashboard

__all__ = ["DashboardApp", "run_dashboard"]

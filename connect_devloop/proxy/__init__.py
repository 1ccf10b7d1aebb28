"""The loopback proxy that the tunnel exposes.

``server.py`` is what the rest of connect-dev sees (``Proxy``: the descriptor, the inspector, the
events); ``relay.py`` moves the bytes between the tunnel and the add-on; ``http1.py`` parses
HTTP/1.1 heads and follows body framing, with no I/O.
"""

from .server import (
    DESCRIPTOR_PATH,
    INSPECTION_TIMEOUT_SECONDS,
    MAX_INSPECTED_BODY,
    AddonAnswer,
    AddonFailure,
    Inspector,
    ProxiedRequest,
    Proxy,
)

__all__ = [
    "DESCRIPTOR_PATH",
    "INSPECTION_TIMEOUT_SECONDS",
    "MAX_INSPECTED_BODY",
    "AddonAnswer",
    "AddonFailure",
    "Inspector",
    "ProxiedRequest",
    "Proxy",
]

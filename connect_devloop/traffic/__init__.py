"""The traffic inspector: what the proxy captured (``proxy.capture``), shown, exported and
replayed.

``view.py`` turns a captured exchange into what a person or a file may see (credentials
masked, bodies decoded and pretty-printed, the Connect JWT decoded); ``har.py`` exports HAR
1.2; ``replay.py`` sends a captured request again, re-signed as the host would sign it now;
``control.py`` is the daemon's control socket and ``client.py`` the commands' end of it.
"""

"""The local runtime's data plane: an L7/L4 proxy process fed a routing table over a unix socket.

Run it with ``python -m pyrollouts.runtimes.local.proxy --state-dir DIR``; the server supervises it
through ``pyrollouts.runtimes.local.proxymanager.ProxyManager``. The table format is documented in
``table.py``, the control channel in ``control.py``.
"""

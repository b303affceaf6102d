"""An asgi.py that imports a model before Django is set up would fail like this."""

raise RuntimeError("Apps aren't loaded yet.")

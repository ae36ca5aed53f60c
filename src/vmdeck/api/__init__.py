"""vmdeck's web face (api layer): the ASGI app behind `vmdeck serve`.

REST endpoints, the live event stream, the console websocket proxy and the
HTML pages all live here and call the same core functions as the CLI; nothing
in vmdeck's core imports this package.

`create_app` and `Settings` are imported on first use: the administrator's CLI
uses the database modules of this package without paying for FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from vmdeck.api.app import create_app

        return create_app
    if name == "Settings":
        from vmdeck.api.settings import Settings

        return Settings
    raise AttributeError(name)

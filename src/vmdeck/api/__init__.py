"""vmdeck's web face (api layer): the ASGI app behind `vmdeck serve`.

REST endpoints, the live event stream, the console websocket proxy and the
HTML pages all live here and call the same core functions as the CLI; nothing
in vmdeck's core imports this package.
"""

from vmdeck.api.app import create_app
from vmdeck.api.settings import Settings

__all__ = ["create_app", "Settings"]

"""Use cases: every operation that changes something, once, for every face of vmdeck (use-case layer).

The CLI (in-process and on its fast path), the CLI's hand-off through the local socket and the REST API
all call the same function here, with an `Actor` saying who asks and through which door. Inside each
function the order is always the same:

1. policy: may this actor do this to this project (vmdeck.usecases.permissions);
2. quota: what the operation will use is charged before anything is used (vmdeck.usecases.charges),
   through vmdeck.store.quota's public functions;
3. placement, for a create on several hosts (vmdeck.cluster.place);
4. the core call (vmdeck.vm, vmdeck.cluster ...),

all inside one audit line (vmdeck.usecases.audit) that records the outcome, refusals included.

This layer may import the core and vmdeck.store, never cli/, api/ or web/ (tests/unit/test_layering.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vmdeck.usecases.actor import Actor, Origin

if TYPE_CHECKING:
    from vmdeck.usecases.services import Services

__all__ = ["Actor", "Origin", "Services"]


def __getattr__(name: str) -> Any:
    # Services imports SQLAlchemy: loaded when a use case needs the stores, not for `vmdeck list`'s rule.
    if name == "Services":
        from vmdeck.usecases.services import Services

        return Services
    raise AttributeError(name)

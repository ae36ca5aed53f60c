"""REST endpoints for templates, the base forms VMs are created from (api layer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vmdeck.spec.templates import get_template, list_templates

__all__ = ["router"]

router = APIRouter(prefix="/api/templates", tags=["templates"])


@router.get("")
def templates_list() -> list[dict[str, Any]]:
    """Built-in and user templates with their resolved settings."""
    return [{"name": t.name, "origin": t.origin, **t.spec.model_dump(mode="json")} for t in list_templates()]


@router.get("/{name}")
def templates_show(name: str) -> dict[str, Any]:
    template = get_template(name)
    return {"name": template.name, "origin": template.origin, **template.spec.model_dump(mode="json")}

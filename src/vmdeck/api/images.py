"""REST endpoints for the image library, the base disks VMs are linked clones of (api layer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vmdeck.images.library import get_image, list_images

__all__ = ["router"]

router = APIRouter(prefix="/api/images", tags=["images"])


@router.get("")
def images_list() -> list[dict[str, Any]]:
    """The library's images (name, os, arch, format, virtual size): what `image` in a create can name."""
    return [record.to_dict() for record in list_images()]


@router.get("/{name}")
def images_show(name: str) -> dict[str, Any]:
    return get_image(name).to_dict()

"""REST endpoints for the image library, the base disks VMs are linked clones of (api layer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vmdeck.images.library import ImageRecord, default_template, get_image, list_images

__all__ = ["router"]

router = APIRouter(prefix="/api/images", tags=["images"])


def _shown(record: ImageRecord) -> dict[str, Any]:
    # `template`: what a create naming this image uses without a template (the web form picks it too).
    return {**record.to_dict(), "template": default_template(record.name)}


@router.get("")
def images_list() -> list[dict[str, Any]]:
    """The library's images (name, os, arch, format, virtual size, the template a VM from it gets by
    default): what `image` in a create can name."""
    return [_shown(record) for record in list_images()]


@router.get("/{name}")
def images_show(name: str) -> dict[str, Any]:
    return _shown(get_image(name))

"""Guest images: the offline tiny guest builder (see vmdeck.images.tiny)."""

from .tiny import GuestImage, build_tiny, find_tiny, image_dir

__all__ = ["GuestImage", "build_tiny", "find_tiny", "image_dir"]

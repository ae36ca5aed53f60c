"""`vmdeck image build|list`: the offline tiny guest images."""

from __future__ import annotations

import typer

from vmdeck.cli.output import out, print_json, progress_reporter

image_app = typer.Typer(help="Guest images vmdeck builds offline from distribution packages.", no_args_is_help=True)


@image_app.command()
def build(
    name: str = typer.Argument("tiny", help="Image to build (tiny)."),
    arch: str = typer.Option("x86_64", "--arch", help="x86_64 or aarch64."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if cached."),
) -> None:
    """Build a guest image (cached and reused)."""
    from vmdeck.errors import InvalidInput, NotFound
    from vmdeck.images.tiny import build_tiny

    if name != "tiny":
        raise NotFound(f"unknown image {name!r} (known: tiny)")
    if arch not in ("x86_64", "aarch64"):
        raise InvalidInput(f"unknown architecture {arch!r}: use x86_64 or aarch64")
    with progress_reporter(f"building {name} ({arch})") as progress:
        image = build_tiny(arch, progress=progress, force=force)
    out.print(f"{name} ({arch}) ready: kernel {image.kernel_version}, {image.kernel}, {image.initrd}")


@image_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """List built images."""
    from vmdeck.images.tiny import find_tiny

    images = [img for arch in ("x86_64", "aarch64") if (img := find_tiny(arch)) is not None]
    if as_json:
        print_json(images)
        return
    for image in images:
        out.print(f"tiny  {image.arch:8} kernel {image.kernel_version}  {image.initrd.parent}")


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")

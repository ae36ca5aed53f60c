"""`vmdeck image build|list|import|remove`: the tiny guest and the image library."""

from __future__ import annotations

from pathlib import Path

import typer

from vmdeck.cli.output import out, print_json, progress_reporter

image_app = typer.Typer(help="Guest images: built offline from Debian's packages, or imported.",
                        no_args_is_help=True)


@image_app.command()
def build(
    name: str = typer.Argument("tiny", help="Image to build: tiny or debian-12 (with --arch aarch64: the "
                                            "library's debian-12-arm64)."),
    arch: str = typer.Option("x86_64", "--arch", help="x86_64 or aarch64."),
    force: bool = typer.Option(False, "--rebuild", "--force", help="Rebuild even if cached."),
) -> None:
    """Build a guest image (cached and reused)."""
    from vmdeck.errors import InvalidInput

    if arch not in ("x86_64", "aarch64"):
        raise InvalidInput(f"unknown architecture {arch!r}: use x86_64 or aarch64")
    from vmdeck.cli.stores import services
    from vmdeck.usecases import Actor
    from vmdeck.usecases.library import build_image

    with progress_reporter(f"building {name} ({arch})") as progress:
        built = build_image(services(), Actor.cli(f"image build {name} --arch {arch}"), name, arch, force=force,
                            progress=progress)
    if name == "tiny":
        out.print(f"{name} ({arch}) ready: kernel {built.kernel_version}, {built.kernel}, {built.initrd}")
        return
    record = built
    out.print(f"{record.name} ({arch}) ready: {record.path}, {record.virtual_gib:.2f} GiB virtual")


@image_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the images: the library's disk images and the tiny guest kernels."""
    from vmdeck.images.library import list_images
    from vmdeck.images.tiny import find_tiny

    records = list_images()
    tiny = [img for arch in ("x86_64", "aarch64") if (img := find_tiny(arch)) is not None]
    if as_json:
        print_json({"images": [r.to_dict() for r in records], "tiny": tiny})
        return
    for record in records:
        os_name = f"{record.os} {record.os_version}".strip()
        out.print(f"{record.name:16} {os_name:10} {record.arch:8} {record.format:6} "
                  f"{record.virtual_gib:6.2f} GiB  {record.path}")
    for image in tiny:
        out.print(f"{'tiny':16} {'busybox':10} {image.arch:8} {'kernel':6} {image.kernel_version}  "
                  f"{image.initrd.parent}")


@image_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A qcow2 or raw disk image (a cloud image, a virt-builder output)."),
    name: str = typer.Option(None, "--name", help="Name in the library (default: the file name's stem)."),
    os_name: str = typer.Option("linux", "--os", help="debian, ubuntu, fedora, ... (informative)."),
    arch: str = typer.Option("x86_64", "--arch", help="x86_64 or aarch64."),
) -> None:
    """Copy a disk image into the library (records its format and virtual size)."""
    from vmdeck.cli.stores import services
    from vmdeck.usecases import Actor
    from vmdeck.usecases.library import import_image

    with progress_reporter(f"importing {file}") as progress:
        progress(f"copying {file} into the image library")
        record = import_image(services(), Actor.cli(f"image import {file}"), file, name=name, os_name=os_name,
                              arch=arch)
    out.print(f"imported {record.name}: {record.format}, {record.virtual_gib:.2f} GiB virtual, {record.path}")


@image_app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Delete an image from the library (refused while VMs use it as their backing file)."""
    from vmdeck.cli.stores import services
    from vmdeck.usecases import Actor
    from vmdeck.usecases.library import remove_image

    remove_image(services(), Actor.cli(f"image remove {name}"), ctx.obj.host(), name)
    out.print(f"removed image {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")

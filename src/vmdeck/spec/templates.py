"""Templates: built-in YAML files plus the user's own, resolved into VmSpecs (core layer).

User templates live in `<config_dir>/templates/NAME.yaml`. A user file with a
built-in's name replaces it; `extends: NAME` starts from another template and
changes only the keys it sets (nested mappings merge, lists replace).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vmdeck.errors import InvalidInput, NotFound
from vmdeck.paths import config_dir
from vmdeck.spec.models import TemplateSpec, VmSpec, check_name

__all__ = ["Template", "list_templates", "get_template", "resolve", "Overrides", "describe_validation_error"]


@dataclass(frozen=True)
class Template:
    name: str
    origin: str  # "builtin" or the user file's path
    spec: TemplateSpec


@dataclass(frozen=True)
class Overrides:
    """What `vmdeck create` lets a user change on top of a template."""

    vcpus: int | None = None
    memory_mib: int | None = None
    disk_gib: float | None = None
    cdrom: Path | None = None
    accel: str | None = None
    network: str | None = None
    image: str | None = None  # the first disk becomes a linked clone of this library image
    tpm: bool | None = None  # an emulated TPM 2.0 (swtpm)


def _builtin_sources() -> dict[str, str]:
    folder = resources.files("vmdeck.spec") / "builtin"
    return {
        entry.name.removesuffix(".yaml"): entry.read_text()
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def _user_sources() -> dict[str, Path]:
    folder = config_dir() / "templates"
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def _load_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise InvalidInput(f"template {origin}: not valid YAML: {err}".splitlines()[0]) from err
    if not isinstance(data, dict):
        raise InvalidInput(f"template {origin}: expected a mapping of settings")
    return data


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe_validation_error(err: ValidationError) -> tuple[str, str]:
    """The first problem pydantic found, as (field path, one-line message)."""
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return field, message


def _raw(name: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    if name in seen:
        raise InvalidInput(f"template {name!r} extends itself through {' -> '.join(seen)}")
    user = _user_sources()
    if name in user:
        data = _load_yaml(user[name].read_text(), str(user[name]))
        origin = str(user[name])
    else:
        builtin = _builtin_sources()
        if name not in builtin:
            known = ", ".join(sorted(set(builtin) | set(user)))
            raise NotFound(f"unknown template {name!r} (known: {known})")
        data, origin = _load_yaml(builtin[name], name), "builtin"
    parent = data.pop("extends", None)
    if parent is not None:
        # A user template named like a built-in may extend that built-in.
        if parent == name and origin != "builtin":
            base = _load_yaml(_builtin_sources()[name], name) if name in _builtin_sources() else None
            if base is None:
                raise InvalidInput(f"template {name!r} extends itself")
        else:
            base, _ = _raw(str(parent), (*seen, name))
        data = _merge(base, data)
    return data, origin


def get_template(name: str) -> Template:
    data, origin = _raw(name)
    try:
        spec = TemplateSpec.model_validate(data)
    except ValidationError as err:
        field, message = describe_validation_error(err)
        raise InvalidInput(f"template {name!r}: {field}: {message}", field=field) from err
    return Template(name=name, origin=origin, spec=spec)


def list_templates() -> list[Template]:
    names = sorted(set(_builtin_sources()) | set(_user_sources()))
    return [get_template(name) for name in names]


def resolve(template_name: str, vm_name: str, overrides: Overrides = Overrides()) -> VmSpec:
    """Template + overrides -> a validated VmSpec, or InvalidInput naming the field."""
    try:
        check_name(vm_name)
    except ValueError as err:
        raise InvalidInput(str(err), field="name") from err
    template = get_template(template_name)
    data = template.spec.model_dump(mode="python")
    if overrides.vcpus is not None:
        data["vcpus"] = overrides.vcpus
    if overrides.memory_mib is not None:
        data["memory_mib"] = overrides.memory_mib
    if overrides.accel is not None:
        data["accel"] = overrides.accel
    if overrides.disk_gib is not None or overrides.image is not None:
        disks = list(data["disks"])
        first = {"bus": "virtio" if data["machine"] != "pc" else "ide"} if not disks else dict(disks[0])
        if overrides.image is not None:
            first.update(image=overrides.image, size_gib=None)
        if overrides.disk_gib is not None:
            first.update(size_gib=overrides.disk_gib)
        first.update(source=None)
        data["disks"] = [first, *disks[1:]]
    if overrides.cdrom is not None:
        cdroms = [dict(c) for c in data["cdroms"]]
        if cdroms:
            cdroms[0]["iso"] = overrides.cdrom
        else:
            bus = {"q35": "sata", "pc": "ide"}.get(data["machine"], "scsi")
            cdroms = [{"bus": bus, "iso": overrides.cdrom}]
        data["cdroms"] = cdroms
        if data["boot"]["kind"] != "kernel":
            data["boot"] = {**data["boot"], "order": ["cdrom", "hd"]}
    if overrides.tpm is not None:
        data["tpm"] = overrides.tpm
    if overrides.network is not None:
        data["nics"] = [{**nic, "network": overrides.network} for nic in data["nics"]]
    data.update(name=vm_name, template=template_name)
    try:
        return VmSpec.model_validate(data)
    except ValidationError as err:
        field, message = describe_validation_error(err)
        raise InvalidInput(f"{field}: {message}", field=field) from err

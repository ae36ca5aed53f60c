"""REST endpoints for VMs: list, show, create, delete, power verbs, exec (api layer).

Each handler is a thin call into vmdeck.vm.*, the same functions the CLI's
commands call; FastAPI runs these sync handlers in worker threads, so a long
libvirt call never blocks the event loop. List and show answer from the
server's inventory (vmdeck.api.inventory, kept current by libvirt's events);
every write refreshes its VM there before answering, so a client sees its own change.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from vmdeck.api.actors import request_actor, request_services
from vmdeck.api.context import AppContext, app_context, fleet_of, request_host, request_inventory, vm_host_of
from vmdeck.api.inventory import Inventory
from vmdeck.api.isos import usable_iso
from vmdeck.api.policy import Grant, grant_of, visible
from vmdeck.cluster.inventory import list_everywhere
from vmdeck.errors import InvalidInput
from vmdeck.host.connection import Host
from vmdeck.images.library import default_template
from vmdeck.spec.templates import Overrides, resolve
from vmdeck.storage.seed import cloud_init_config
from vmdeck.store.tenancy import DEFAULT_PROJECT
from vmdeck.usecases import Actor, Services
from vmdeck.usecases import vms as vm_cases
from vmdeck.vm.inventory import VmSummary, show_vm
from vmdeck.vm.state import POWER_VERBS, PowerVerb, allowed_actions, capabilities, current_state

__all__ = ["router"]

router = APIRouter(prefix="/api/vms", tags=["vms"])


class CreateVm(BaseModel):
    name: str = Field(description="Name of the new VM.")
    template: str | None = Field(None, description="Template (base form) to start from "
                                 "(default: tiny; with an image, debian-12 or debian-12-arm64 by the image's arch).")
    vcpus: int | None = Field(None, description="vCPUs (overrides the template).")
    memory_mib: int | None = Field(None, description="Memory in MiB.")
    disk_gib: float | None = Field(None, description="Size of the first disk in GiB.")
    cdrom: str | None = Field(None, description="Name of an ISO in the ISO library to insert in the first drive.")
    accel: Literal["auto", "kvm", "tcg"] | None = None
    tpm: bool | None = Field(None, description="An emulated TPM 2.0 (swtpm), as `vmdeck create --tpm`; "
                             "unset keeps the template's choice.")
    # libvirt network names are plain words; the pattern keeps control characters out of the domain XML.
    network: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,63}$",
                                description="'user' or a libvirt network name for every NIC.")
    image: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$",
                              description="Library image the first disk is a linked clone of (e.g. debian-12, debian-12-arm64).")
    ssh_keys: list[str] = Field(default_factory=list, max_length=32,
                                description="OpenSSH public keys (the text of id_*.pub) for the user.")
    user: str | None = Field(None, description="User cloud-init creates (default: debian).")
    password: str | None = Field(None, description="The user's password (stored hashed in the seed).")
    hostname: str | None = Field(None, description="Guest hostname (default: from the VM name).")
    user_data: str | None = Field(None, max_length=1_000_000, description="A #cloud-config document.")
    network_config: str | None = Field(None, max_length=1_000_000, description="cloud-init network config.")
    start: bool = Field(False, description="Start the VM once created.")
    host: str = Field("auto", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
                      description="Registered host to create it on, or 'auto': the host with the most "
                                  "free memory that fits it.")
    project: str | None = Field(None, description="Project of the new VM (default: your only project, else "
                                "'default'); counted against its quotas.")


class ResourcesRequest(BaseModel):
    # Bounded far beyond any host (the host's own limits answer in words) yet inside 64 bits: a 23-digit
    # count is a 422, not an overflow deep in the quota arithmetic.
    vcpus: int | None = Field(None, ge=1, le=2**20, description="New vCPU count.")
    memory_mib: int | None = Field(None, ge=32, le=2**40, description="New memory in MiB.")
    autostart: bool | None = Field(None, description="Start the VM when libvirtd starts.")
    boot_order: list[Literal["hd", "cdrom", "network"]] | None = Field(
        None, min_length=1, max_length=3, description="Devices the firmware boots from, in order (next boot).")


class PowerResult(BaseModel):
    name: str
    state: str
    result: str | None = None
    allowed_actions: list[str] = Field(default_factory=list, description="What the VM's new state allows.")
    can: dict[str, bool] = Field(default_factory=dict, description="What the pages offer in that state, as in GET.")


class ShutdownRequest(BaseModel):
    timeout: float = Field(60.0, gt=0, le=3600)
    force: bool = False


class StartRequest(BaseModel):
    wait: bool = False
    timeout: float = Field(120.0, gt=0, le=3600)


class ExecRequest(BaseModel):
    command: list[str] = Field(min_length=1, description="Program and arguments, no shell unless you name one.")
    timeout: float = Field(60.0, gt=0, le=3600)


class ExecOut(BaseModel):
    exit_code: int
    signal: int | None
    stdout: str
    stderr: str
    stdout_b64: str
    stderr_b64: str


@router.get("", response_model=list[VmSummary])  # the core's dataclass is the schema
async def vms_list(ctx: AppContext = Depends(app_context), inventory: Inventory = Depends(request_inventory),
                   grant: Grant = Depends(grant_of)) -> Response:
    """The VMs of your projects (administrators: every VM, with its project or null), with their host.
    One host: from the event-fed inventory (no libvirt call per request), and 503 while libvirtd is down
    rather than the last known list (the connection's liveness is known locally, without a call).
    Several: each host asked at once, under a deadline; hosts that did not answer are named in the
    X-Vmdeck-Unreachable header."""
    principal = grant.principal
    assert principal is not None
    fleet = fleet_of(ctx)
    if fleet is None:
        if not ctx.host.connected:  # (re)connect in a worker; HostError (503) while libvirtd is away
            await anyio.to_thread.run_sync(ctx.host.get)
        if principal.admin:  # everything: the answer encoded once per change, shared by every administrator
            return Response(await inventory.list_json(), media_type="application/json")
        mine = [asdict(vm) for vm in await inventory.list() if visible(principal, vm.project)]
        return Response(json.dumps(mine).encode(), media_type="application/json")
    listed = await anyio.to_thread.run_sync(list_everywhere, fleet)
    headers = ({"X-Vmdeck-Unreachable": json.dumps(listed.unreachable)}
               if listed.unreachable and principal.admin else None)
    shown = [asdict(vm) for vm in listed.vms if visible(principal, vm.project)]
    return Response(json.dumps(shown), media_type="application/json", headers=headers)


@router.post("", status_code=201)
def vms_create(body: CreateVm, grant: Grant = Depends(grant_of), ctx: AppContext = Depends(app_context),
               inventory: Inventory = Depends(request_inventory), actor: Actor = Depends(request_actor),
               services: Services = Depends(request_services)) -> dict[str, Any]:
    """Create a VM from a template with overrides, in a project and within its quotas (409 quota_exceeded
    names the quota, its limit and the use), on the host placement picks (or `host`); errors name the
    field (`field`) they are about, and a refusal for lack of room names each host and why."""
    cdrom = usable_iso(ctx, grant, body.cdrom, field="cdrom") if body.cdrom else None
    template = body.template or (default_template(body.image) if body.image else "tiny")
    spec = resolve(template, body.name, Overrides(vcpus=body.vcpus, memory_mib=body.memory_mib,
                                                  disk_gib=body.disk_gib, cdrom=cdrom, accel=body.accel,
                                                  network=body.network, image=body.image, tpm=body.tpm))
    cloud_init = None
    if any(d.image for d in spec.disks):
        cloud_init = cloud_init_config(
            body.name, hostname=body.hostname or None, user=body.user or None, password=body.password or None,
            ssh_keys=[(f"ssh_keys[{i}]", key) for i, key in enumerate(body.ssh_keys) if key.strip()],
            user_data=body.user_data or None, network_config=body.network_config or None)
    elif body.ssh_keys or body.user or body.password or body.hostname or body.user_data or body.network_config:
        raise InvalidInput("ssh_keys, user, password, hostname, user_data and network_config need an image",
                           field="image")
    made = vm_cases.create(services, actor, spec, local=None if fleet_of(ctx) else ctx.host.get(),
                               project=grant.project or DEFAULT_PROJECT, on_host=body.host, cloud_init=cloud_init,
                               start=body.start)
    inventory.after_write(body.name)
    return show_vm(made.host, body.name).to_dict()


@router.get("/{name}")
async def vms_show(name: str, host: str | None = Query(None, description="The VM's host (several hosts)."),
                   ctx: AppContext = Depends(app_context),
                   inventory: Inventory = Depends(request_inventory)) -> Response:
    """One VM: settings, state, disks, NICs, displays (from its live XML, kept until the VM changes)."""
    if fleet_of(ctx) is None:
        return Response(await inventory.show_json(name), media_type="application/json")
    details = await anyio.to_thread.run_sync(lambda: show_vm(vm_host_of(ctx, name, host), name).to_dict())
    return Response(json.dumps(details, default=str), media_type="application/json")


@router.patch("/{name}")
def vms_set_resources(name: str, body: ResourcesRequest, host: Host = Depends(request_host),
                      inventory: Inventory = Depends(request_inventory), actor: Actor = Depends(request_actor),
                      services: Services = Depends(request_services)) -> dict[str, Any]:
    """Change vCPUs and/or memory in the VM's definition (a running VM gets them at its next boot),
    within the project's quotas (growth is checked and applied under the quota lock); whether it starts
    with the host, and/or its boot order."""
    reply = vm_cases.set_resources(services, actor, host, name, vcpus=body.vcpus, memory_mib=body.memory_mib,
                                       autostart=body.autostart,
                                       boot_order=list(body.boot_order) if body.boot_order is not None else None)
    inventory.after_write(name)
    return reply


@router.post("/{name}/apply-pending")
def vms_apply_pending(name: str, host: Host = Depends(request_host),
                      inventory: Inventory = Depends(request_inventory)) -> dict[str, Any]:
    """Make the values saved for the next boot live now where the running VM allows it (vCPUs plugged in
    up to the definition's maximum); what cannot change live stays pending (`still_pending`)."""
    from vmdeck.vm.pending import apply_now

    result = apply_now(host, name)
    inventory.after_write(name)
    return {"name": name, "applied": result.applied, "still_pending": result.still_pending}


@router.delete("/{name}")
def vms_delete(name: str, force: bool = Query(False, description="Power the VM off first if it runs."),
               keep_disks: bool = Query(False, description="Keep the volumes vmdeck created for it."),
               host: Host = Depends(request_host), inventory: Inventory = Depends(request_inventory),
               actor: Actor = Depends(request_actor), services: Services = Depends(request_services)) -> dict[str, Any]:
    """Delete the VM and the volumes vmdeck created for it (never ISOs or images the user brought)."""
    removed = vm_cases.delete(services, actor, host, name, force=force, keep_disks=keep_disks)
    inventory.forget(name)
    return {"name": name, "deleted": True, "removed_volumes": removed}


class Adopt(BaseModel):
    project: str = Field(description="Project to move the VM into (created when it does not exist).")


@router.post("/{name}/adopt")
def vms_adopt(name: str, body: Adopt, host: Host = Depends(request_host), inventory: Inventory = Depends(request_inventory),
              actor: Actor = Depends(request_actor), services: Services = Depends(request_services)) -> dict[str, Any]:
    """Record the VM (made by virt-install, virsh, or in another project) as belonging to `project`
    (administrators). Not held to the quota: the administrator decides."""
    before = vm_cases.adopt(services, actor, host, name, body.project)
    inventory.after_write(name)
    return {"name": name, "project": body.project, "previous_project": before}


def _result(host: Host, inventory: Inventory, name: str, result: str | None = None) -> PowerResult:
    inventory.after_write(name)  # the next list shows the new state, whether or not the event has arrived
    state = current_state(host.lookup(name))
    return PowerResult(name=name, state=state, result=result, allowed_actions=allowed_actions(state),
                       can=capabilities(state))


@router.post("/{name}/start", response_model=PowerResult)
def vms_start(name: str, body: StartRequest | None = None, host: Host = Depends(request_host),
              inventory: Inventory = Depends(request_inventory), actor: Actor = Depends(request_actor),
              services: Services = Depends(request_services)) -> PowerResult:
    body = body or StartRequest()
    vm_cases.start(services, actor, host, name, wait=body.wait, timeout=body.timeout)
    return _result(host, inventory, name, POWER_VERBS["start"].done)


@router.post("/{name}/shutdown", response_model=PowerResult)
def vms_shutdown(name: str, body: ShutdownRequest | None = None, host: Host = Depends(request_host),
                 inventory: Inventory = Depends(request_inventory), actor: Actor = Depends(request_actor),
                 services: Services = Depends(request_services)) -> PowerResult:
    """ACPI power button; waits for the guest; with force, powers off when the guest ignores it."""
    body = body or ShutdownRequest()
    how = vm_cases.shutdown(services, actor, host, name, timeout=body.timeout, force=body.force)
    return _result(host, inventory, name, how)


def _power_route(verb: PowerVerb) -> None:
    def route(name: str, host: Host = Depends(request_host), inventory: Inventory = Depends(request_inventory),
              actor: Actor = Depends(request_actor), services: Services = Depends(request_services)) -> PowerResult:
        outcome = vm_cases.power(services, actor, host, name, verb.name)  # a reboot with pending changes says how
        return _result(host, inventory, name, outcome or verb.done)

    route.__doc__ = verb.help
    router.post(f"/{{name}}/{verb.name}", response_model=PowerResult, name=f"vms_{verb.name}")(route)


# The verbs without options, one route each from the core's table; start and shutdown (above) take a body.
for _verb in POWER_VERBS.values():
    if _verb.name not in ("start", "shutdown"):
        _power_route(_verb)


@router.post("/{name}/exec", response_model=ExecOut)
def vms_exec(name: str, body: ExecRequest, host: Host = Depends(request_host), actor: Actor = Depends(request_actor),
             services: Services = Depends(request_services)) -> ExecOut:
    """Run a program in the guest through its agent; output as text (UTF-8, replaced) and base64."""
    from vmdeck.usecases.guest import exec_command

    result = exec_command(services, actor, host, name, body.command, timeout=body.timeout)
    return ExecOut(exit_code=result.exit_code, signal=result.signal,
                   stdout=result.stdout.decode(errors="replace"), stderr=result.stderr.decode(errors="replace"),
                   stdout_b64=base64.b64encode(result.stdout).decode(), stderr_b64=base64.b64encode(result.stderr).decode())




class MigrateRequest(BaseModel):
    to: str = Field(description="Registered host name (or a libvirt URI) to move the VM to.")
    live: bool = Field(True, description="Live (the VM keeps running); false moves a shut-off VM.")
    timeout: float | None = Field(None, gt=0, le=86400, description="Cancel a live move still running after "
                                                                    "this many seconds (the VM stays where it was).")
    bandwidth_mib: int | None = Field(None, ge=1, description="Cap the copy at this many MiB/s.")


@router.post("/{name}/migrate")
def vms_migrate(name: str, body: MigrateRequest, host: Host = Depends(request_host),
                ctx: AppContext = Depends(app_context), actor: Actor = Depends(request_actor),
                services: Services = Depends(request_services)) -> dict[str, Any]:
    """Move the VM to another host; progress lines go out on the event stream ({"type": "migration"})."""
    from vmdeck.cluster.registry import Registry
    from vmdeck.usecases.hosts import migrate

    registry = ctx.fleet.registry if ctx.fleet is not None else Registry(ctx.settings.db_path)
    hub = ctx.events

    def progress(line: str) -> None:
        if hub is not None:
            hub.publish({"type": "migration", "vm": name, "to": body.to, "line": line})

    try:
        summary = migrate(services, actor, host, name, body.to, registry, live=body.live, timeout=body.timeout,
                          bandwidth_mib=body.bandwidth_mib, progress=progress)
    except Exception as error:
        progress(f"failed: {error}")
        raise
    progress(f"done: {summary}")
    return {"name": name, "to": body.to, "summary": summary}

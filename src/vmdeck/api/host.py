"""REST endpoints for the libvirt host: capacity, overcommit, KVM usability (api layer)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Query

from vmdeck.api.context import request_host
from vmdeck.host.accel import probe_kvm
from vmdeck.host.capabilities import host_facts
from vmdeck.host.connection import Host
from vmdeck.vm.inventory import list_vms
from vmdeck.vm.state import ACTIVE

__all__ = ["router"]

router = APIRouter(prefix="/api/host", tags=["host"])


@router.get("")
def host_check(refresh: bool = Query(False, description="Probe KVM again instead of using the cached verdict."),
               host: Host = Depends(request_host)) -> dict[str, Any]:
    """What `vmdeck host check` reports, plus how much of the host the VMs take (vCPU overcommit)."""
    facts = host_facts(host)
    verdict = probe_kvm(host, refresh=refresh, facts=facts)
    vms = list_vms(host)
    running = [vm for vm in vms if vm.state in ACTIVE]
    vcpus_running = sum(vm.vcpus for vm in running)
    return {
        **dataclasses.asdict(facts),
        "kvm_usable": verdict.usable,
        "kvm_reason": verdict.reason,
        "default_accel": "kvm" if verdict.usable else "tcg",
        "vms_total": len(vms),
        "vms_running": len(running),
        "vcpus_running": vcpus_running,
        "memory_mib_running": sum(vm.memory_mib for vm in running),
        "vcpu_overcommit": round(vcpus_running / facts.pcpus, 2) if facts.pcpus else None,
    }

"""Is KVM really usable here? A probe that boots the tiny guest under KVM, with a deadline.

/dev/kvm existing proves nothing: a nested or paravirtual KVM (kvm_pvm) may
accept the ioctls and still fail to run a stock kernel. So vmdeck boots its
tiny guest as a transient `type='kvm'` domain and waits for the ready marker
on the serial console; the verdict is cached per host fingerprint (libvirt,
QEMU and host kernel versions) so the cost is paid once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vmdeck.domxml.render import RenderContext, render_domain
from vmdeck.errors import HostError, InvalidInput, VmdeckError
from vmdeck.host.capabilities import HostFacts, host_facts
from vmdeck.host.connection import Host
from vmdeck.paths import data_dir
from vmdeck.spec.models import BootSpec, GraphicsSpec, VmSpec
from vmdeck.vm.state import VmState, to_state

__all__ = ["KvmVerdict", "probe_kvm", "cached_kvm_verdict", "choose_domain_type", "SERIAL_LOG_DIR"]

SERIAL_LOG_DIR = Path("/var/log/libvirt/qemu")
PROBE_NAME = "vmdeck-kvm-probe"
PROBE_DEADLINE_S = 25.0
# Part of the cache key: bump it when the probe itself changes, so old verdicts are not reused.
PROBE_VERSION = "4"


@dataclass(frozen=True)
class KvmVerdict:
    usable: bool
    reason: str
    probed_at: float
    seconds: float | None = None


def _fingerprint(facts: HostFacts) -> str:
    release = os.uname().release if facts.uri.startswith(("qemu:///", "qemu+unix")) else ""
    parts = (PROBE_VERSION, facts.uri, facts.hostname, facts.qemu_version, facts.libvirt_version, release,
             str(facts.kvm_module))
    raw = "|".join(parts)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _cache_path(facts: HostFacts) -> Path:
    return data_dir() / "probes" / f"kvm-{_fingerprint(facts)}.json"


def qemu_complaint(message: str | None) -> str:
    """QEMU's own words from a libvirt start error, e.g. "failed to set MSR 0x10a to 0x69".

    libvirt wraps them as "internal error: qemu unexpectedly closed the monitor: <timestamp>
    qemu-system-x86_64: error: ..."; the last "error:" is QEMU's, and it is what a user can act on.
    """
    text = " ".join((message or "no message").split())
    if "error:" in text:
        text = text.rsplit("error:", 1)[1]
        # Follow-up lines (an assertion, a backtrace) start with the binary's name again.
        text = text.split(" qemu-system-", 1)[0].strip()
    return text or "no message"


def _boot_under_kvm(host: Host) -> KvmVerdict:
    # Imported here: the image builder is heavy and only the probe needs it.
    from vmdeck.images.tiny import find_tiny

    image = find_tiny("x86_64")
    if image is None:
        return KvmVerdict(False, "not probed: the tiny guest image is not built (vmdeck image build tiny)", time.time())
    log = SERIAL_LOG_DIR / f"{PROBE_NAME}-serial.log"
    spec = VmSpec(
        name=PROBE_NAME, template="tiny", vcpus=1, memory_mib=128, nics=(), cdroms=(), disks=(),
        graphics=GraphicsSpec(type="none"), video="none", tablet="none", usb=False, guest_agent=False,
        balloon=False, hotplug_slots=0, boot=BootSpec(kind="kernel", image="tiny"),
    )
    ctx = RenderContext(domain_type="kvm", kernel=image.kernel, initrd=image.initrd,
                        cmdline=image.cmdline, serial_log=log, accel_requested="kvm")
    with contextlib.suppress(VmdeckError):
        host.conn.lookup(PROBE_NAME).poweroff()
    started = time.monotonic()
    try:
        dom = host.conn.create_transient(render_domain(spec, ctx))
    except VmdeckError as err:
        return KvmVerdict(False, f"QEMU could not start a KVM guest: {qemu_complaint(err.libvirt_text or None)}",
                          time.time())
    try:
        while time.monotonic() - started < PROBE_DEADLINE_S:
            state, reason = dom.state()
            known = to_state(state)
            if known is VmState.PAUSED or known.stopped:  # KVM paused it on an error, or QEMU ended
                return KvmVerdict(
                    False,
                    f"/dev/kvm accepted the guest but it stopped (state {state}, reason {reason}): "
                    "KVM here cannot run a stock kernel (nested or paravirtual KVM?)",
                    time.time(),
                )
            with contextlib.suppress(OSError):
                if image.ready_marker in log.read_text(errors="replace"):
                    return KvmVerdict(True, "the tiny guest booted under KVM", time.time(), time.monotonic() - started)
            time.sleep(0.25)
        return KvmVerdict(
            False,
            f"the tiny guest did not boot under KVM within {PROBE_DEADLINE_S:.0f} s "
            "(KVM present but unable to run a stock kernel)",
            time.time(),
        )
    finally:
        with contextlib.suppress(VmdeckError):
            dom.poweroff()


def cached_kvm_verdict(facts: HostFacts) -> KvmVerdict | None:
    """The verdict of an earlier probe of this host, or None (never probes: `vmdeck host list` stays quick)."""
    if not facts.kvm_offered:
        return KvmVerdict(False, "libvirt does not offer KVM on this host", time.time())
    with contextlib.suppress(ValueError, TypeError, OSError):
        return KvmVerdict(**json.loads(_cache_path(facts).read_text()))
    return None


def probe_kvm(host: Host, *, refresh: bool = False, facts: HostFacts | None = None) -> KvmVerdict:
    """Cached verdict on whether KVM can run a guest on `host`."""
    facts = facts or host_facts(host)
    if not facts.kvm_offered:
        why = "no /dev/kvm" if host.is_local and not facts.kvm_device else "libvirt does not offer KVM on this host"
        return KvmVerdict(False, why, time.time())
    cache = _cache_path(facts)
    if not refresh and cache.exists():
        with contextlib.suppress(ValueError, TypeError, OSError):
            return KvmVerdict(**json.loads(cache.read_text()))
    verdict = _boot_under_kvm(host)
    if not verdict.reason.startswith("not probed"):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(asdict(verdict)))
    return verdict


def choose_domain_type(host: Host, arch: str, requested: str) -> tuple[str, str]:
    """('kvm'|'qemu', why) for a VM of `arch` when the user asked for `requested` (auto|kvm|tcg)."""
    if requested not in ("auto", "kvm", "tcg"):
        raise InvalidInput(f"unknown accelerator {requested!r}: use auto, kvm or tcg", field="accel")
    facts = host_facts(host)
    if requested == "tcg":
        return "qemu", "TCG requested"
    if arch != facts.host_arch:
        if requested == "kvm":
            raise InvalidInput(f"KVM cannot run a {arch} guest on a {facts.host_arch} host; use --accel tcg")
        return "qemu", f"{arch} guest on a {facts.host_arch} host: emulated by TCG"
    verdict = probe_kvm(host, facts=facts)
    if requested == "kvm":
        if not facts.kvm_offered:
            raise HostError(f"KVM is not available on {facts.hostname}: {verdict.reason}")
        if not verdict.usable:
            raise HostError(f"KVM is present but not usable on {facts.hostname}: {verdict.reason}")
        return "kvm", "KVM requested"
    if verdict.usable:
        return "kvm", "KVM probe passed"
    return "qemu", f"KVM not usable ({verdict.reason}): using TCG"

"""One error tree for the whole of vmdeck (core layer).

    VmdeckError                 exit 1, HTTP 500   (a bug or an unexpected failure)
     ├── InvalidInput           exit 2, HTTP 422   bad name, size, template field, key name ...
     ├── NotFound               exit 3, HTTP 404   no such VM, template, ISO, device
     ├── Conflict               exit 4, HTTP 409   wrong state (start a running VM) or duplicate
     │    └── StateError        ... and says both the state it found and the one it needed
     ├── HostError              exit 5, HTTP 503   libvirtd down, QEMU missing, KVM unusable
     ├── GuestError             exit 6, HTTP 502   the guest did not answer (no agent, timeout)
     └── TimedOut               exit 7, HTTP 504   a migration did not finish in time (cancelled)

The CLI maps errors to exit codes and the API to statuses through the two
class attributes below, so each mapping lives in exactly one table: this one.
libvirt's own exceptions are translated in vmdeck.host.libvirt_api, nowhere else.
"""

from __future__ import annotations

__all__ = [
    "VmdeckError",
    "InvalidInput",
    "NotFound",
    "Conflict",
    "StateError",
    "HostError",
    "GuestError",
    "TimedOut",
]


class VmdeckError(Exception):
    """Root of every error vmdeck raises on purpose."""

    exit_code = 1
    http_status = 500
    kind = "internal"
    # Set by the libvirt boundary on the errors it translates: libvirt's error name
    # ("operation_timeout", "no_domain_metadata") and libvirt's own text, without vmdeck's context.
    reason: str | None = None
    libvirt_text: str = ""
    # The specific condition the boundary recognised, one of vmdeck.host.libvirt_api.CAUSES ("tray_locked",
    # "no_space" ...): what core modules test instead of libvirt's words.
    cause: str | None = None

    def __init__(self, message: str) -> None:
        # One line: the CLI prints it as-is and the API returns it as `detail`.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(VmdeckError):
    exit_code = 2
    http_status = 422
    kind = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(VmdeckError):
    exit_code = 3
    http_status = 404
    kind = "not_found"


class Conflict(VmdeckError):
    exit_code = 4
    http_status = 409
    kind = "conflict"


class StateError(Conflict):
    """An operation needs the VM in another state ("start" needs "shut off")."""

    kind = "wrong_state"

    def __init__(self, vm: str, state: str, required: str, action: str) -> None:
        super().__init__(f"cannot {action} VM '{vm}': it is {state}, it must be {required}")
        self.vm = vm
        self.state = state
        self.required = required


class HostError(VmdeckError):
    exit_code = 5
    http_status = 503
    kind = "host_unavailable"


class GuestError(VmdeckError):
    exit_code = 6
    http_status = 502
    kind = "guest_unavailable"


class TimedOut(VmdeckError):
    """A long operation (a migration) did not finish within the time it was given and was cancelled."""

    exit_code = 7
    http_status = 504
    kind = "timed_out"

"""A real `vmdeck serve` for fault tests: started, SIGKILLed and restarted on its own data dir (import as
`from faults_support import Serve`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from serving import free_port, wait_for_serve

PASSWORD = "faults-test-password"
# Same names as conftest's vm_factory: a dead run's VMs are cleaned up by the next run.
PREFIX = f"vmdeck-test-{os.getpid()}-"
VMDECK = [sys.executable, "-m", "vmdeck.cli.main"]


def scratch_dir(prefix: str, mode: int = 0o755) -> Path:
    """A fresh folder QEMU (libvirt-qemu) can reach: under /var/tmp, whose 1777 nobody tightens
    (tests elsewhere may leave /tmp itself 0700, which no QEMU can enter)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(mode)
    return path


class Serve:
    """`vmdeck serve` on a free loopback port with VMDECK_DATA_DIR=`data`; `client()` holds an API token."""

    def __init__(self, data: Path, uri: str = "qemu:///system", extra_env: dict[str, str] | None = None) -> None:
        self.data = data
        self.uri = uri
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "VMDECK_DATA_DIR": str(data), "VMDECK_ADMIN_PASSWORD": PASSWORD,
                    "VMDECK_URI": uri, **(extra_env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.token: str | None = None

    def start(self, timeout: float = 90) -> None:
        log = open(self.data / "serve.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen([sys.executable, "-m", "vmdeck.cli.main", "serve", "--port", str(self.port)],
                                        stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for_serve(self.url, self.process, self.data / "serve.log", timeout)
        if self.token is None:
            with httpx.Client(base_url=self.url, timeout=30) as web:
                login = web.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
                login.raise_for_status()
                # The session cookie is Secure (fine for browsers on 127.0.0.1; httpx keeps it for https).
                cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
                reply = web.post("/api/auth/tokens", json={"name": "faults"},
                                 headers={"X-CSRF-Token": login.json()["csrf_token"], "Cookie": cookie})
                reply.raise_for_status()
                self.token = reply.json()["token"]

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {self.token}"})

    def kill(self) -> None:
        """SIGKILL: no cleanup handler of the server runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)

"""A real `vmdeck serve --tls-self-signed` for the remote command line's tests (test_remote_cli.py, and the
Debian guest's ssh through the server in test_debian_image.py): its own database, an administrator with a
known password, and a customer's config folder with the server added as a remote."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
from itest_support import VMDECK

from serving import wait_for_serve

__all__ = ["PASSWORD", "Served", "vmdeck"]

PASSWORD = "remote-admin-password"


class Served:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.url = f"https://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        # The server's backup repository: a folder QEMU's user can pass through (pytest's are root's only).
        reachable = Path(tempfile.mkdtemp(prefix="vmdeck-test-remote-bk-", dir="/var/tmp"))
        reachable.chmod(0o711)
        self.backup_repo = reachable / "repo"

    def start(self) -> None:
        log = self.folder / "serve.log"
        env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD, "VMDECK_LOCAL_SOCKET": "off",
               "VMDECK_BACKUP_REPO": str(self.backup_repo)}  # a repository of this test's own
        with open(log, "ab") as out:
            self.process = subprocess.Popen([*VMDECK, "serve", "--port", str(self.port), "--tls-self-signed",
                                             "--db", str(self.folder / "db" / "web.sqlite")],
                                            stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_for_serve(self.url, self.process, log, verify=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def close(self) -> None:
        """Stop it for good, and remove its backup repository."""
        self.stop()
        shutil.rmtree(self.backup_repo.parent, ignore_errors=True)

    def admin(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=120, verify=False)
        reply = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        reply.raise_for_status()
        client.headers["Cookie"] = f"vmdeck_session={reply.cookies['vmdeck_session']}"
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client

    @property
    def db(self) -> Path:
        return self.folder / "db" / "web.sqlite"

    def add_as_admin(self, config: Path, name: str = "srv") -> None:
        """`vmdeck remote add NAME` in `config` with a fresh administrator's token."""
        token = self.admin().post("/api/auth/tokens", json={"name": "test", "expires_in_days": 1})
        token.raise_for_status()
        added = vmdeck("remote", "add", name, self.url, "--token-stdin", stdin=token.json()["token"] + "\n",
                       config=config)
        assert added.returncode == 0, added.stderr


def vmdeck(*args: str, stdin: str | None = None, config: Path | None = None, db: Path | None = None,
           timeout: float = 600, backup_repo: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command line; `config`: the customer's config folder; `db`: the database (the server's,
    so that in-process use cases see the projects and quotas the server holds)."""
    env = {**os.environ, "COLUMNS": "200", "VMDECK_LOCAL_SOCKET": "off"}
    if config is not None:
        env["VMDECK_CONFIG_DIR"] = str(config)
    if db is not None:
        env["VMDECK_DB"] = str(db)
    if backup_repo is not None:
        env["VMDECK_BACKUP_REPO"] = str(backup_repo)
    return subprocess.run([*VMDECK, *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout)

"""The customer's command line through a server: `vmdeck --remote R ...` against curl sending the same
HTTPS request with the same token, in one run.

    .venv/bin/python bench/bench_remote.py [--rounds 5] [--runs 10] [--write]

  (1) `vmdeck --remote R list --json`   vs `curl -sk -H 'Authorization: Bearer T' https://.../api/vms`
  (2) `vmdeck --remote R start NAME`    vs `curl -sk -X POST ... /api/vms/NAME/start`      target: both <= 3x

Both sides are a process start and one HTTPS request to the same `vmdeck serve --tls-self-signed` (its
own database, an administrator's token). (1) is timed by hyperfine (no shell); (2) by this script, the VM
powered off (untimed) before each start; the order flips every round. Medians over rounds (min-max).
The VM is named vmdeck-dev-bench-remote-* and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_cli import interleaved
from perfdoc import command_line, host_load, spread, stamp, write_section

from vmdeck.host.connection import connect
from vmdeck.vm import lifecycle

PREFIX = "vmdeck-dev-bench-remote-"
VMDECK = str(Path(sys.executable).parent / "vmdeck")
TITLE = "Remote CLI"
PASSWORD = "bench-remote-password"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/login", verify=False, timeout=10).status_code == 200:
                return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError("vmdeck serve did not come up")


def token_for(url: str) -> str:
    with httpx.Client(base_url=url, verify=False, timeout=60) as client:
        signed = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        signed.raise_for_status()
        headers = {"Cookie": f"vmdeck_session={signed.cookies['vmdeck_session']}",
                   "X-CSRF-Token": signed.json()["csrf_token"]}
        made = client.post("/api/auth/tokens", json={"name": "bench", "expires_in_days": 1}, headers=headers)
        made.raise_for_status()
        return str(made.json()["token"])


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr.strip()[-500:]}")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmdeck-bench-remote-"))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = {**os.environ, "VMDECK_ADMIN_PASSWORD": PASSWORD, "VMDECK_CONFIG_DIR": str(folder / "config"),
           "VMDECK_LOCAL_SOCKET": "off", "VMDECK_DB": str(folder / "db" / "web.sqlite")}
    with open(folder / "serve.log", "wb") as log:
        server = subprocess.Popen([VMDECK, "serve", "--port", str(port), "--tls-self-signed",
                                   ], stdout=log, stderr=subprocess.STDOUT,
                                  env=env)
    name = f"{PREFIX}{os.getpid()}"
    try:
        wait_up(url, server)
        token = token_for(url)
        subprocess.run([VMDECK, "remote", "add", "bench", url, "--token-stdin"], input=token + "\n", text=True,
                       env=env, check=True, capture_output=True)
        subprocess.run([VMDECK, "create", name, "-t", "tiny", "--memory", "96"], env=env, check=True,
                       capture_output=True)
        curl = ["curl", "-sk", "--fail", "-H", f"Authorization: Bearer {token}"]
        lists = hyperfine_pair([f"{VMDECK} --remote bench list --json", shlex.join([*curl, f"{url}/api/vms"])],
                               args.rounds, args.runs, env)
        starts: list[list[float]] = [[], []]
        with connect("qemu:///system") as host:
            for index in range(args.rounds):
                sides = [([VMDECK, "--remote", "bench", "start", name], 0),
                         ([*curl, "-X", "POST", f"{url}/api/vms/{name}/start"], 1)]
                for argv, side in (sides if index % 2 == 0 else sides[::-1]):
                    with contextlib.suppress(Exception):
                        lifecycle.power(host, name, "poweroff")
                    starts[side].append(timed(argv, env))
    finally:
        server.terminate()
        server.wait(30)
        with connect("qemu:///system") as host, contextlib.suppress(Exception):
            lifecycle.delete(host, name, force=True)
    rows = [("(1) list (`--json`)", lists[0], lists[1]), ("(2) start", starts[0], starts[1])]
    body = [f"Measured {stamp()}, {host_load()}. Command: `{command_line()}`", "",
            "| | `vmdeck --remote` | curl, same request and token | ratio (median) |", "|---|---|---|---|"]
    for label, ours, theirs in rows:
        ratio = sorted(o / t for o, t in zip(ours, theirs, strict=True))[len(ours) // 2]
        body.append(f"| {label} | {spread(ours)} | {spread(theirs)} | {ratio:.2f}x |")
    body += ["", "Both sides start a process and send one HTTPS request to `vmdeck serve --tls-self-signed`; "
             "vmdeck's side also checks the pinned certificate and prints through the same renderer as in-process.",
             "",
             "Where the time went (issue 22, `python -X importtime`, cProfile): of the 8.9x, 42 ms was "
             "`ssl.create_default_context()` loading the system's CA store for a check that is never made (the "
             "pinned fingerprint is the trust): the context is now a bare TLS client one. The rest was imports "
             "the fast path did not need: `dataclasses` (and `inspect`) for the remotes file, `pathlib`, "
             "`urllib.parse`, `hashlib`, `typing`, and the local hand-off module (with its socket helpers) for "
             "reading the answer. `vmdeck --remote R list` now imports Python's `ssl`, `socket` and `json` and "
             "vmdeck's small modules only (tests/integration/test_remote_cli.py checks the list); Python with "
             "`import ssl, json` alone is most of what is left."]
    text = "\n".join(body)
    print(f"## {TITLE}\n\n{text}")
    if args.write:
        write_section(TITLE, text)


def hyperfine_pair(commands: list[str], rounds: int, runs: int, env: dict[str, str]) -> list[list[float]]:
    """bench_cli's interleaved rounds, with the remote's settings in the environment hyperfine passes on."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return interleaved(commands, rounds, runs)
    finally:
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    main()

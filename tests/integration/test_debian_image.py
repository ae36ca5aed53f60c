"""The Debian 12 cloud image, the image library and VMs created from it (real libvirtd, TCG).

The image is built once per machine by scripts/setup-host.sh (cached in the library);
a fixture builds it if it is missing. One Debian VM is booted per session and shared
by the read-only checks; a second one, from an imported copy of the image, shows
that import works and that VMs on one base stay independent. Boots are slow under
TCG on a loaded machine: every wait is for the event itself, with minutes to spare.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from itest_support import delete_vm, wait_for

from vmdeck.host.connection import Host
from vmdeck.images.debian import build_image
from vmdeck.images.diskimage import plan_layout
from vmdeck.images.library import ImageRecord, find_image, remove_image
from vmdeck.spec.templates import resolve
from vmdeck.vm import lifecycle
from vmdeck.vm.create import create_vm

# The same naming as conftest's vm_factory: the session cleanup removes leftovers of this process.
PREFIX = f"vmdeck-test-{os.getpid()}-"
BOOT_TIMEOUT = 1200  # TCG, 2 vCPUs on a shared 2-core machine: the first boot can take many minutes
TOKEN = f"token-{uuid.uuid4().hex[:10]}"
Cli = Callable[..., subprocess.CompletedProcess[str]]


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def image() -> ImageRecord:
    return build_image("debian-12")  # cached by setup-host.sh: instant unless missing


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("sshkey") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmdeck-itest", "-f", str(key)], check=True)
    return key


@pytest.fixture(scope="module")
def base_checksum(image: ImageRecord) -> str:
    return _sha256(image.path)


def _boot_and_wait_for_ssh(host: Host, name: str, key: Path) -> None:
    lifecycle.start(host, name)
    lifecycle.wait_ready(host, name, timeout=BOOT_TIMEOUT)  # the guest agent answers

    def ssh_answers() -> bool:
        from vmdeck.vm.ssh import ssh_argv

        argv = ssh_argv(host, name, identity=key, command=["true"], extra_options=["-o", "BatchMode=yes"])
        return subprocess.run(argv, capture_output=True, timeout=60).returncode == 0

    wait_for(ssh_answers, timeout=BOOT_TIMEOUT, interval=3)


@pytest.fixture(scope="module")
def first_steps(host: Host, image: ImageRecord, ssh_key: Path, base_checksum: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """What a new user types, in a row: `vmdeck create --image debian-12 --ssh-key`, `vmdeck start --wait`,
    then `vmdeck ssh NAME -- true` at once (with --timeout 0: it must not need to wait itself). The VM,
    user `tester`, hostname deb-itest and a runcmd token, is the one the read-only checks share."""
    name = f"{PREFIX}debian-{uuid.uuid4().hex[:6]}"
    home = tmp_path_factory.mktemp("debian-cli")
    user_data = home / "user-data.yaml"
    user_data.write_text(f"#cloud-config\nruncmd:\n  - [sh, -c, 'echo {TOKEN} > /var/tmp/vmdeck-token']\n")
    # Module scope: the per-test config and database of tests/conftest.py are not set yet.
    env = {**os.environ, "VMDECK_CONFIG_DIR": str(home / "config"), "VMDECK_DB": str(home / "vmdeck.sqlite")}

    def vmdeck(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vmdeck.cli.main", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env=env)

    steps: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        steps["create"] = vmdeck("create", name, "--image", "debian-12", "--disk", "4", "--ssh-key", f"{ssh_key}.pub",
                                 "--user", "tester", "--hostname", "deb-itest", "--user-data", user_data)
        if steps["create"].returncode == 0:
            steps["start"] = vmdeck("start", name, "--wait", "--timeout", str(BOOT_TIMEOUT), timeout=BOOT_TIMEOUT + 60)
            steps["ssh"] = vmdeck("ssh", name, "--identity", ssh_key, "--timeout", "0", "--", "true", timeout=120)
        steps["name"] = subprocess.CompletedProcess([], 0, name, "")
        yield steps
    finally:
        delete_vm(host, name)


@pytest.fixture(scope="module")
def debian_vm(first_steps: dict[str, subprocess.CompletedProcess[str]]) -> str:
    """The running VM of first_steps, with SSH reachable (the guests' tests fail early otherwise)."""
    for step in ("create", "start", "ssh"):
        assert step in first_steps and first_steps[step].returncode == 0, (step, first_steps.get(step))
    return first_steps["name"].stdout


def test_ssh_right_after_start_wait(first_steps: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """`start --wait` says ready only once cloud-init finished and sshd answers: the next ssh gets in."""
    assert first_steps["create"].returncode == 0, first_steps["create"].stderr
    assert first_steps["start"].returncode == 0, first_steps["start"].stderr
    assert "started and ready" in first_steps["start"].stdout
    ssh = first_steps["ssh"]
    assert ssh.returncode == 0, ssh.stderr
    assert "Connection reset" not in ssh.stderr and "waiting for" not in ssh.stderr


def _ssh(cli: Cli, name: str, key: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # ssh exits 255 for its own failures: a connection reset while cloud-init restarts sshd (or a
    # loaded host drops the forward's first packets) is retried, anything the command says is not.
    for _attempt in range(6):
        result = cli("ssh", name, "--identity", key, "--", *command, timeout=120)
        if result.returncode != 255 or not any(
                why in result.stderr for why in ("Connection reset", "Connection refused", "kex_exchange_identification",
                                                 "Connection closed")):
            return result
        time.sleep(5)
    return result


# ------------------------------------------------------------------ the image itself


def test_image_contents(image: ImageRecord, tmp_path: Path) -> None:
    """Kernel, cloud-init, the agent and sshd are in; SSH host keys and a root password are not."""
    size = Path(image.path).stat().st_size
    assert 50 * 2**20 < size < 600 * 2**20, f"qcow2 of {size / 2**20:.0f} MiB"
    assert (image.os, image.os_version, image.format) == ("debian", "12", "qcow2")
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", image.path, str(raw)], check=True, timeout=600)
    assert raw.stat().st_size == image.virtual_size
    layout = plan_layout(image.virtual_size - 67 * 2**20)
    fs = f"{raw}?offset={layout.root_start * 512}"  # e2fsprogs' unix I/O manager reads at an offset

    def debugfs(request: str) -> str:
        return subprocess.run(["debugfs", "-R", request, fs], capture_output=True, text=True, check=True).stdout

    boot = debugfs("ls -p /boot")
    assert "vmlinuz-" in boot and "initrd.img-" in boot and "cloud-amd64" in boot
    for path in ("/usr/bin/cloud-init", "/usr/sbin/qemu-ga", "/usr/sbin/sshd", "/usr/bin/growpart",
                 "/boot/grub/grub.cfg"):
        assert f"/{Path(path).name}/" in debugfs(f"ls -p {Path(path).parent}"), path
    assert "ssh_host_" not in debugfs("ls -p /etc/ssh")
    shadow = debugfs("cat /etc/shadow")
    root = next(line for line in shadow.splitlines() if line.startswith("root:"))
    assert root.split(":")[1] in ("*", "!", "!*"), "root must have no usable password"
    assert debugfs("cat /etc/machine-id").strip() == ""
    esp = f"{raw}@@{layout.esp_start * 512}"
    listing = subprocess.run(["mdir", "-b", "-i", esp, "::/EFI/BOOT"], capture_output=True, text=True, check=True)
    assert "BOOTX64.EFI" in listing.stdout.upper()
    with open(raw, "rb") as disk:
        assert disk.read(512)[510:] == b"\x55\xaa"  # the protective MBR, with GRUB's boot code


def test_image_list_shows_it(cli: Cli, image: ImageRecord) -> None:
    listed = json.loads(cli("image", "list", "--json").stdout)
    record = next(r for r in listed["images"] if r["name"] == "debian-12")
    assert record["virtual_size"] == image.virtual_size and record["format"] == "qcow2"


# ------------------------------------------------------------------ the booted guest


def test_guest_reaches_multi_user_target(cli: Cli, debian_vm: str, ssh_key: Path) -> None:
    def active() -> bool:
        return _ssh(cli, debian_vm, ssh_key, "systemctl", "is-active", "multi-user.target").stdout.strip() == "active"

    wait_for(active, timeout=BOOT_TIMEOUT, interval=5)


def test_ssh_prints_the_cloud_init_hostname(cli: Cli, debian_vm: str, ssh_key: Path) -> None:
    result = _ssh(cli, debian_vm, ssh_key, "cat", "/etc/hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deb-itest"


def test_ssh_through_the_server_reaches_sshd(debian_vm: str, ssh_key: Path, tmp_path: Path) -> None:
    """`vmdeck --remote R ssh`: ssh(1) through the server's websocket tunnel (no other port) to the guest's sshd."""
    from remote_support import Served, vmdeck

    from serving import free_port

    served = Served(tmp_path, free_port())
    served.start()
    try:
        config = tmp_path / "customer-config"
        served.add_as_admin(config)
        for _attempt in range(6):  # as _ssh: a reset while cloud-init restarts sshd is retried
            result = vmdeck("--remote", "srv", "ssh", debian_vm, "--identity", str(ssh_key), "--", "cat",
                            "/etc/hostname", config=config, timeout=300)
            if result.returncode != 255:
                break
            time.sleep(5)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "deb-itest"
        failed = vmdeck("--remote", "srv", "ssh", debian_vm, "--identity", str(ssh_key), "--", "exit", "7",
                        config=config, timeout=300)
        assert failed.returncode == 7, failed.stderr  # the guest command's status is the command's
    finally:
        served.close()


def test_runcmd_token_and_authorized_key(cli: Cli, debian_vm: str, ssh_key: Path) -> None:
    def token() -> str:
        return _ssh(cli, debian_vm, ssh_key, "cat", "/var/tmp/vmdeck-token").stdout.strip()

    assert wait_for(token, timeout=BOOT_TIMEOUT, interval=5) == TOKEN
    keys = _ssh(cli, debian_vm, ssh_key, "cat", "/home/tester/.ssh/authorized_keys").stdout
    assert Path(f"{ssh_key}.pub").read_text().split()[1] in keys
    assert _ssh(cli, debian_vm, ssh_key, "sudo", "-n", "id", "-u").stdout.strip() == "0"


def test_guest_info_names_debian_12(cli: Cli, debian_vm: str) -> None:
    result = cli("guest-info", debian_vm, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert "Debian" in info["os"].get("name", "") and info["os"].get("version-id") == "12", info["os"]


def test_show_reports_the_loopback_forward(cli: Cli, debian_vm: str) -> None:
    details = json.loads(cli("show", debian_vm, "--json").stdout)
    (forward,) = details["port_forwards"]
    assert forward["address"] == "127.0.0.1" and forward["guest_port"] == 22
    # On the host, the port listens on loopback only (/proc/net/tcp: 0100007F = 127.0.0.1, state 0A = LISTEN).
    wanted = f"0100007F:{forward['host_port']:04X}"
    listening = [ln.split()[1] for ln in Path("/proc/net/tcp").read_text().splitlines()[1:] if ln.split()[3] == "0A"]
    assert wanted in listening
    assert not any(addr.endswith(f":{forward['host_port']:04X}") and addr != wanted for addr in listening)
    assert "127.0.0.1:" in cli("show", debian_vm).stdout


def test_root_filesystem_grew_to_the_disk(cli: Cli, debian_vm: str, ssh_key: Path) -> None:
    """--disk 4 on a 2 GiB image: growpart and resize2fs (cloud-init) gave the root the space."""
    def grown() -> bool:
        out = _ssh(cli, debian_vm, ssh_key, "df", "-B1", "--output=size", "/").stdout.split()
        return len(out) == 2 and int(out[1]) > 3 * 2**30

    wait_for(grown, timeout=300, interval=5)


# ------------------------------------------------------------------ import, a second VM on one base


def test_imported_copy_boots_and_vms_are_independent(host: Host, cli: Cli, image: ImageRecord, debian_vm: str,
                                                       ssh_key: Path, base_checksum: str, tmp_path: Path) -> None:
    imported_name = f"itest-{uuid.uuid4().hex[:6]}"
    result = cli("image", "import", image.path, "--name", imported_name, "--os", "debian")
    assert result.returncode == 0, result.stderr
    imported = find_image(imported_name)
    assert imported is not None and imported.virtual_size == image.virtual_size
    second = f"{PREFIX}imported-{uuid.uuid4().hex[:6]}"
    try:
        result = cli("create", second, "--image", imported_name, "--ssh-key", f"{ssh_key}.pub",
                     "--user", "tester", "--hostname", "deb-second")
        assert result.returncode == 0, result.stderr
        # While a VM uses it, the image cannot be removed; the error names the VM.
        refused = cli("image", "remove", imported_name)
        assert refused.returncode == 4 and second in refused.stderr
        # The first VM writes a file; the second, booted afterwards, must not see it.
        assert _ssh(cli, debian_vm, ssh_key, "echo first > /var/tmp/only-here && sync").returncode == 0
        _boot_and_wait_for_ssh(host, second, ssh_key)
        assert _ssh(cli, second, ssh_key, "cat", "/etc/hostname").stdout.strip() == "deb-second"
        assert _ssh(cli, second, ssh_key, "test", "-e", "/var/tmp/only-here").returncode == 1
        assert _ssh(cli, debian_vm, ssh_key, "cat", "/var/tmp/only-here").stdout.strip() == "first"
        overlays = {json.loads(cli("show", vm, "--json").stdout)["disks"][0]["source"] for vm in (debian_vm, second)}
        assert len(overlays) == 2
    finally:
        delete_vm(host, second)
    assert _sha256(image.path) == base_checksum, "the base image changed"
    assert Path(imported.path).is_file(), "deleting the VM must leave its base image"
    assert cli("image", "remove", imported_name).returncode == 0
    assert find_image(imported_name) is None


def test_two_vms_on_one_base_have_their_own_overlays_and_leave_it(host: Host, cli: Cli, image: ImageRecord,
                                                                    base_checksum: str) -> None:
    names = [f"{PREFIX}pair{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
    try:
        for name in names:
            assert cli("create", name, "--image", "debian-12", "--disk", "3").returncode == 0
        overlays = [json.loads(cli("show", n, "--json").stdout)["disks"][0]["source"] for n in names]
        assert overlays[0] != overlays[1]
        for overlay in overlays:
            info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", overlay],
                                             capture_output=True, text=True, check=True).stdout)
            assert info["backing-filename"] == image.path and info["virtual-size"] == 3 * 2**30
        refused = cli("image", "remove", "debian-12")
        assert refused.returncode == 4 and all(n in refused.stderr for n in names)
        for name in names:
            assert cli("delete", name).returncode == 0
        assert all(not Path(o).exists() for o in overlays)
    finally:
        for name in names:
            delete_vm(host, name)
    assert Path(image.path).is_file() and _sha256(image.path) == base_checksum


# ------------------------------------------------------------------ bad input: clear error, nothing created


def _nothing_created(host: Host, name: str) -> None:
    assert not host.exists(name)
    pool = Path("/var/lib/vmdeck/pool")
    assert not any(p.name.startswith(name) for p in pool.iterdir())


@pytest.mark.parametrize("case", ["not-cloud-config", "unknown-image", "missing-key", "key-is-a-dir",
                                  "disk-too-small", "private-key"])
def test_bad_input_is_refused_before_anything_exists(host: Host, cli: Cli, image: ImageRecord, ssh_key: Path,
                                                     tmp_path: Path, case: str) -> None:
    name = f"{PREFIX}bad-{uuid.uuid4().hex[:6]}"
    script = tmp_path / "user-data.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    args, code, message = {
        "not-cloud-config": (["--image", "debian-12", "--user-data", script], 2, "#cloud-config"),
        "unknown-image": (["--image", "no-such-image"], 3, "no image named 'no-such-image'"),
        "missing-key": (["--image", "debian-12", "--ssh-key", tmp_path / "nope.pub"], 2, "does not exist"),
        "key-is-a-dir": (["--image", "debian-12", "--ssh-key", tmp_path], 2, "is a directory"),
        "disk-too-small": (["--image", "debian-12", "--disk", "1"], 2, "smaller than image 'debian-12'"),
        "private-key": (["--image", "debian-12", "--ssh-key", ssh_key], 2, "private key"),
    }[case]
    started = time.monotonic()
    result = cli("create", name, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 120
    _nothing_created(host, name)


def test_remove_of_an_unknown_image_is_not_found(cli: Cli) -> None:
    result = cli("image", "remove", "no-such-image")
    assert result.returncode == 3 and "no image named" in result.stderr


def test_remove_image_refuses_users_given(image: ImageRecord) -> None:
    from vmdeck.errors import Conflict

    with pytest.raises(Conflict, match="vm-a"):
        remove_image(image.name, ["vm-a"])
    assert find_image(image.name) is not None


def test_image_boots_with_uefi_too(host: Host, image: ImageRecord) -> None:
    """The same disk under OVMF: the removable-path GRUB on the ESP loads the kernel, which sees EFI."""
    (Path(os.environ["VMDECK_CONFIG_DIR"]) / "templates").mkdir(parents=True, exist_ok=True)
    (Path(os.environ["VMDECK_CONFIG_DIR"]) / "templates" / "debian-12-uefi.yaml").write_text(
        "extends: debian-12\nboot: {kind: uefi, order: [hd]}\n")
    name = f"{PREFIX}uefi-{uuid.uuid4().hex[:6]}"
    create_vm(host, resolve("debian-12-uefi", name))
    try:
        lifecycle.start(host, name)
        log = Path(f"/var/log/libvirt/qemu/{name}-serial.log")

        def kernel_on_efi() -> bool:
            text = log.read_text(errors="replace")
            return "efi: EFI v" in text and "Linux version" in text

        wait_for(kernel_on_efi, timeout=BOOT_TIMEOUT, interval=2)
        assert "GNU GRUB" in log.read_text(errors="replace")
    finally:
        delete_vm(host, name)

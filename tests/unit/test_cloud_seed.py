"""cloud-init NoCloud seeds: input validation, the merged user-data, the ISO pycdlib writes."""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib
import pytest
import yaml

from vmdeck.errors import InvalidInput
from vmdeck.storage.seed import (
    CloudInitConfig,
    build_seed_iso,
    check_ssh_key,
    cloud_init_config,
    hostname_for,
    read_text_file,
    render_meta_data,
    render_user_data,
    validate_network_config,
    validate_user_data,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx3 test@host"


@pytest.mark.parametrize("text, message", [
    ("runcmd: [ls]\n", "first line must be '#cloud-config'"),
    ("#!/bin/sh\necho hi\n", "first line must be '#cloud-config'"),
    ("#cloud-config\nruncmd: [ls\n", "not valid YAML"),
    ("#cloud-config\n- a\n- b\n", "must be a YAML mapping"),
])
def test_user_data_must_be_cloud_config(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        validate_user_data(text)
    assert "\n" not in str(caught.value)


def test_user_data_mapping_is_returned() -> None:
    assert validate_user_data("#cloud-config\nruncmd:\n  - [touch, /x]\n") == {"runcmd": [["touch", "/x"]]}
    assert validate_user_data("#cloud-config\n") == {}


def test_network_config_needs_a_version() -> None:
    assert validate_network_config("version: 2\nethernets: {}\n")
    assert validate_network_config("network:\n  version: 1\n  config: []\n")
    with pytest.raises(InvalidInput, match="version"):
        validate_network_config("ethernets: {}\n")


def test_hostnames() -> None:
    assert hostname_for("web_1.test", None) == "web-1-test"
    assert hostname_for("x", "deb-one") == "deb-one"
    with pytest.raises(InvalidInput, match="invalid hostname"):
        hostname_for("x", "bad_name")


def test_ssh_keys_are_public_keys() -> None:
    assert check_ssh_key(KEY + "\n", "k.pub") == KEY
    with pytest.raises(InvalidInput, match="not an OpenSSH public key"):
        check_ssh_key("ssh-foo AAAA x\n", "odd.pub")
    with pytest.raises(InvalidInput, match="is a private key"):
        check_ssh_key("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n", "id")
    with pytest.raises(InvalidInput, match="exactly one"):
        check_ssh_key("", "empty.pub")


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        read_text_file(tmp_path / "nope.pub", "ssh key")
    with pytest.raises(InvalidInput, match="is a directory"):
        read_text_file(tmp_path, "ssh key")


def test_user_data_merges_the_user_and_keeps_theirs() -> None:
    cfg = cloud_init_config("vm1", hostname="h1", user="alice", ssh_keys=[("k", KEY)], password="s3cret",
                            user_data="#cloud-config\nruncmd:\n  - [touch, /tok]\nusers: [default]\n")
    text = render_user_data(cfg)
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data["hostname"] == "h1"
    assert data["runcmd"] == [["touch", "/tok"]]
    assert data["users"][0] == "default"
    alice = data["users"][1]
    assert alice["name"] == "alice" and alice["ssh_authorized_keys"] == [KEY]
    assert alice["passwd"].startswith("$6$") and "s3cret" not in text
    assert alice["lock_passwd"] is False and data["ssh_pwauth"] is True


def test_seed_iso_is_labelled_cidata_with_the_files() -> None:
    files = {"meta-data": render_meta_data("vm1", "h1"),
             "user-data": render_user_data(CloudInitConfig(hostname="h1")),
             "network-config": "version: 2\n"}
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(build_seed_iso(files)))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        for name, text in files.items():
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            assert out.getvalue().decode() == text
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, joliet_path=f"/{name}")
            assert out.getvalue().decode() == text
    finally:
        iso.close()
    meta = yaml.safe_load(files["meta-data"])
    assert meta["local-hostname"] == "h1" and meta["instance-id"].startswith("iid-vm1-")

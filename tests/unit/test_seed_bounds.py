"""The seed's input bounds: names are whole-string matches (no trailing newline slips into /etc/hostname or
the user's name), and SSH keys are bounded in number and size."""

from __future__ import annotations

import pytest

from vmdeck.errors import InvalidInput
from vmdeck.storage.seed import MAX_SSH_KEY_BYTES, MAX_SSH_KEYS, check_user, cloud_init_config, hostname_for

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx3 test@host"


@pytest.mark.parametrize("hostname", ["web\n", "web\r\n", "\nweb", "web\nruncmd: [reboot]", "a" * 64, "-web", ""])
def test_a_hostname_is_refused_unless_the_whole_of_it_is_a_hostname(hostname: str) -> None:
    with pytest.raises(InvalidInput, match="invalid hostname") as refused:
        hostname_for("vm", hostname)
    assert refused.value.field == "hostname"


@pytest.mark.parametrize("user", ["alice\n", "alice\n  sudo: ALL", "Alice", "root", "a" * 33])
def test_a_user_name_is_refused_unless_the_whole_of_it_is_a_user_name(user: str) -> None:
    with pytest.raises(InvalidInput, match="invalid user name"):
        check_user(user)


def test_good_names_still_pass() -> None:
    assert hostname_for("vm", "web-1") == "web-1" and hostname_for("vm", "a" * 63) == "a" * 63
    assert check_user("alice_2") == "alice_2"


def test_ssh_keys_are_bounded_in_number_and_size() -> None:
    assert len(cloud_init_config("vm", ssh_keys=[(f"k{i}", KEY) for i in range(MAX_SSH_KEYS)]).ssh_keys) == 32
    with pytest.raises(InvalidInput, match=f"at most {MAX_SSH_KEYS} SSH keys, not 33"):
        cloud_init_config("vm", ssh_keys=[(f"k{i}", KEY) for i in range(MAX_SSH_KEYS + 1)])
    huge = "ssh-ed25519 " + "A" * MAX_SSH_KEY_BYTES + " big@host"
    with pytest.raises(InvalidInput, match=f"k0 is larger than {MAX_SSH_KEY_BYTES} bytes") as refused:
        cloud_init_config("vm", ssh_keys=[("k0", huge)])
    assert refused.value.field == "ssh_keys"

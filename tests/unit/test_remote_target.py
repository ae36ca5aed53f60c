"""The remote command line's pure parts: which server a command line is for, fingerprints, URLs, and the
list of commands a remote runs (the light module's copy must match the commands really registered)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from vmdeck.cli import remotes
from vmdeck.cli.remote_run import app
from vmdeck.cli.remote_target import REMOTE_COMMANDS, split_remote
from vmdeck.errors import InvalidInput


def test_the_light_list_is_the_registered_one() -> None:
    assert set(typer.main.get_group(app).commands) == REMOTE_COMMANDS


@pytest.fixture
def with_srv() -> None:
    remotes.save(remotes.Remotes("local", {"srv": remotes.Remote("srv", "https://h:1", "SHA256:" + "a" * 64, "t")}))


def test_which_server(with_srv: None) -> None:
    assert split_remote(["list"]) == (None, ["list"])
    assert split_remote(["--remote", "srv", "list", "--json"]) == ("srv", ["list", "--json"])
    assert split_remote(["--remote=srv", "show", "vm1"]) == ("srv", ["show", "vm1"])
    assert split_remote(["show", "srv:vm1"]) == ("srv", ["show", "vm1"])
    assert split_remote(["show", "other:vm1"]) == (None, ["show", "other:vm1"])  # not a remote: a VM name
    assert split_remote(["--remote", "local", "list"]) == (None, ["list"])
    with pytest.raises(InvalidInput, match="runs only on this machine"):
        split_remote(["--remote", "srv", "serve"])
    known = remotes.load()
    known.current = "srv"
    remotes.save(known)
    assert split_remote(["list"]) == ("srv", ["list"])
    assert split_remote(["remote", "list"]) == (None, ["remote", "list"])
    with pytest.raises(InvalidInput, match="--remote local"):
        split_remote(["image", "list"])


def test_fingerprints_and_urls() -> None:
    hexa = "ab" * 32
    colons = ":".join(hexa[i:i + 2].upper() for i in range(0, 64, 2))
    assert remotes.normalize_fingerprint(f"SHA256:{colons}") == f"SHA256:{hexa}"
    assert remotes.normalize_fingerprint(hexa) == f"SHA256:{hexa}"
    with pytest.raises(InvalidInput):
        remotes.normalize_fingerprint("SHA256:1234")
    assert remotes.check_url("https://host.example:8470/some/path") == "https://host.example:8470"
    assert remotes.check_url("http://127.0.0.1:8470") == "http://127.0.0.1:8470"
    for bad in ("http://10.0.0.1:8470", "ftp://h", "https://", "https://h:99999", "https://h x"):
        with pytest.raises(InvalidInput):
            remotes.check_url(bad)


def test_the_remotes_file_is_in_the_config_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """remotes.py finds the config folder without pathlib: the same folder as vmdeck.paths."""
    from vmdeck.paths import config_dir

    for env in ({"VMDECK_CONFIG_DIR": str(tmp_path / "c")}, {"XDG_CONFIG_HOME": str(tmp_path / "x")}, {}):
        monkeypatch.delenv("VMDECK_CONFIG_DIR", raising=False)
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert remotes.remotes_path() == config_dir() / "remotes.json"


def test_a_remote_url_splits_without_urllib() -> None:
    from vmdeck.cli.remote_client import split_url

    assert split_url("https://vm.example.net:8470") == ("https", "vm.example.net", 8470)
    assert split_url("https://[::1]:8470") == ("https", "::1", 8470)
    assert split_url("http://127.0.0.1") == ("http", "127.0.0.1", 80)
    assert split_url("https://h") == ("https", "h", 443)

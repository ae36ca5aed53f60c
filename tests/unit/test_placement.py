"""Placement is a pure function over host capacities: who fits, who wins, and why the others do not."""

from __future__ import annotations

import pytest

from vmdeck.cluster.placement import Capacity, NoRoom, choose_host, rejection


def _cap(name: str, **kw: object) -> Capacity:
    base: dict[str, object] = dict(reachable=True, pcpus=2, memory_mib=4096, vcpu_ratio=2.0, reserve_mib=512)
    base.update(kw)
    return Capacity(name=name, **base)  # type: ignore[arg-type]


def test_most_free_memory_wins() -> None:
    caps = [_cap("a", memory_allocated_mib=1000), _cap("b", memory_allocated_mib=200), _cap("c", memory_allocated_mib=600)]
    assert choose_host(caps, 1, 256).name == "b"


def test_ties_go_to_fewer_vcpus_then_name() -> None:
    caps = [_cap("b", vcpus_allocated=1), _cap("c"), _cap("a", vcpus_allocated=1)]
    assert choose_host(caps, 1, 256).name == "c"
    assert choose_host([_cap("b"), _cap("a")], 1, 256).name == "a"


def test_memory_limit_is_total_minus_reserve() -> None:
    cap = _cap("a", memory_allocated_mib=3000)  # 4096 - 512 - 3000 = 584 free
    assert rejection(cap, 1, 584) is None
    assert "needs 585 MiB, 584 MiB free" in (rejection(cap, 1, 585) or "")


def test_vcpu_limit_is_pcpus_times_ratio() -> None:
    cap = _cap("a", vcpus_allocated=3)  # 2 x 2.0 = 4
    assert rejection(cap, 1, 64) is None
    assert "needs 2 vCPUs, 1 left (2 pCPUs x 2, 3 allocated)" == rejection(cap, 2, 64)


def test_refusal_names_every_host_and_why() -> None:
    caps = [_cap("full", memory_allocated_mib=3584), _cap("down", reachable=False, reason="connection refused"),
            _cap("maint", draining=True), _cap("home")]
    with pytest.raises(NoRoom) as raised:
        choose_host(caps, 1, 1024, what="VM 'web1'", exclude=["home"])
    message = str(raised.value)
    assert message.startswith("no host can take VM 'web1' (1 vCPU, 1024 MiB): ")
    assert raised.value.reasons == {
        "full": "needs 1024 MiB, 0 MiB free (4096 total, 3584 allocated, 512 reserved)",
        "down": "unreachable (connection refused)",
        "maint": "draining",
        "home": "the VM's own host",
    }
    assert raised.value.exit_code == 4 and raised.value.http_status == 409


def test_six_vms_spread_over_three_hosts() -> None:
    caps = {n: _cap(n, memory_mib=1024 + 512, memory_allocated_mib=used) for n, used in (("a", 0), ("b", 100), ("c", 250))}
    placed = []
    for _ in range(6):
        chosen = choose_host(caps.values(), 1, 96)
        placed.append(chosen.name)
        caps[chosen.name] = _cap(chosen.name, memory_mib=chosen.memory_mib,
                                 memory_allocated_mib=chosen.memory_allocated_mib + 96)
    assert placed == ["a", "a", "b", "a", "b", "c"]

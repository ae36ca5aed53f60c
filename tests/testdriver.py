"""libvirt's own fake hypervisor with a node XML of ours, one fresh instance per test.

`test:///default` is shared by the whole process and leaks state between tests;
`test:///<path>` starts from the given node description every time it is opened.
"""

from __future__ import annotations

from pathlib import Path

from vmdeck.host.connection import Host, connect

NODE_XML = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
  <pool type='dir'>
    <name>vmdeck</name>
    <target><path>{pool}</path></target>
    <capacity unit='GiB'>100</capacity><allocation unit='GiB'>10</allocation><available unit='GiB'>90</available>
  </pool>
  <domain type='test'>
    <name>busy</name>
    <memory unit='MiB'>256</memory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
</node>
"""


def fake_host_uri(folder: Path, name: str) -> str:
    """A test-driver host of its own in folder/NAME (several hosts in one test): its VM is busy-NAME."""
    pool = folder / name / "pool"
    pool.mkdir(parents=True)
    node = folder / name / "node.xml"
    node.write_text(NODE_XML.format(pool=pool).replace("<name>busy</name>", f"<name>busy-{name}</name>"))
    return f"test://{node}"


def open_test_host(tmp_path: Path) -> Host:
    pool = tmp_path / "pool"
    pool.mkdir(exist_ok=True)
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(pool=pool))
    return connect(f"test://{node}")

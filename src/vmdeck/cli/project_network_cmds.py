"""`vmdeck project networks`: which libvirt networks a project's VMs may use (cli layer).

Until projects own networks, a tenant may put a NIC on QEMU's user network (private to each VM)
and on the libvirt networks an administrator allowed its project here; anything else answers
like a network that does not exist (vmdeck.store.tenancy.Tenancy.check_networks). Host
administrators use any network. The command is registered under `vmdeck project`
(vmdeck.cli.admin_cmds), acts on the database of `vmdeck serve`, and is audited (vmdeck.usecases.networks).
"""

from __future__ import annotations

from pathlib import Path

import typer

from vmdeck.cli.output import out, print_json
from vmdeck.cli.stores import stores
from vmdeck.errors import InvalidInput

__all__ = ["networks"]


def networks(
    name: str = typer.Argument(..., help="The project."),
    allow: list[str] = typer.Option([], "--allow", help="Let the project's VMs use this libvirt network (repeatable)."),
    disallow: list[str] = typer.Option([], "--disallow", help="Take a network away (repeatable); VMs already on it "
                                                              "keep their NICs."),
    db: Path = typer.Option(None, "--db", envvar="VMDECK_DB", help="The database of vmdeck serve (default: "
                            "<data dir>/web/vmdeck.sqlite)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show or change the libvirt networks a project may use (besides QEMU's user network, always allowed)."""
    both = set(allow) & set(disallow)
    if both:
        raise InvalidInput(f"both --allow and --disallow name {', '.join(sorted(both))}", field="network")
    from vmdeck.usecases import Actor, Services
    from vmdeck.usecases.networks import allowed_networks

    s = stores(db)
    change = " ".join([*(f"+{n}" for n in allow), *(f"-{n}" for n in disallow)])
    allowed = allowed_networks(Services(s.db, s.tenancy, s.audit), Actor.cli(f"project networks {name} {change}"),
                               name, allow=list(allow), disallow=list(disallow))
    if as_json:
        print_json({"project": name, "networks": ["user", *allowed]})
        return
    out.print(f"{name}: user" + "".join(f", {n}" for n in allowed), highlight=False)

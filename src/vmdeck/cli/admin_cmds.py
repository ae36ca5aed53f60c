"""`vmdeck project|user|audit|vm adopt`: the host administrator's tenancy commands (cli layer).

They act on the same database as `vmdeck serve` (`--db`, $VMDECK_DB, or the
default <data dir>/web/vmdeck.sqlite), so root on the host can set up projects and
accounts, and recover a lost password, without the server or a web session. Every
change is written to the audit log as done by the host user through "cli".

This module, stores (the database opened for a command, and `create` in a project) and serve_cmds
are the CLI's only doors into vmdeck.api (its database modules, never FastAPI); other commands
reach them through stores.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from vmdeck.cli.output import out, print_json
from vmdeck.cli.stores import stores

project_app = typer.Typer(help="Projects (tenants) and their quotas.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts of the web UI / REST API and their project roles.", no_args_is_help=True)
vm_app = typer.Typer(help="VM ownership: bring a VM into a project.", no_args_is_help=True)

# parser=str: the setting may be a URL, which a Path would mangle (postgresql://h/db -> postgresql:/h/db).
DB_OPTION = typer.Option(None, "--db", envvar="VMDECK_DB", parser=str, help="The database of vmdeck serve: a file, "
                         "sqlite:///PATH or postgresql://USER@HOST/DB (default: <data dir>/web/vmdeck.sqlite).")


# --- projects ----------------------------------------------------------------------------------------
def _quota(instances: int | None, vcpus: int | None, memory: int | None, disk: float | None,
           iso: float | None, networks: int | None = None, forwards: int | None = None) -> dict[str, float | int | None]:
    given = {"instances": instances, "vcpus": vcpus, "memory_mib": memory, "disk_gib": disk, "iso_gib": iso,
             "networks": networks, "forwards": forwards}
    return {k: v for k, v in given.items() if v is not None}


@project_app.command("create")
def project_create(
    name: str,
    instances: int = typer.Option(None, "--instances", help="At most this many VMs."),
    vcpus: int = typer.Option(None, "--vcpus", help="At most this many vCPUs in all."),
    memory: int = typer.Option(None, "--memory", help="At most this much memory in all (MiB)."),
    disk: float = typer.Option(None, "--disk", help="At most this much disk in all (GiB, configured sizes)."),
    iso: float = typer.Option(None, "--iso", help="At most this much uploaded ISO storage (GiB)."),
    networks: int = typer.Option(None, "--networks", help="At most this many networks of the project's own."),
    forwards: int = typer.Option(None, "--forwards", help="At most this many port forwards."),
    db: Path = DB_OPTION,
) -> None:
    """Create a project; limits not given are unlimited."""
    s = stores(db)
    s.tenancy.create_project(name, _quota(instances, vcpus, memory, disk, iso, networks, forwards))
    s.record("project.manage", f"project create {name}", project=name)
    out.print(f"created project [bold]{name}[/bold]")


@project_app.command("list")
def project_list(db: Path = DB_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every project with its limits and members."""
    s = stores(db)
    projects = [s.tenancy.project(n).to_dict() for n in s.tenancy.project_names()]
    if as_json:
        print_json(projects)
        return
    table = Table("PROJECT", "INSTANCES", "vCPUs", "MEMORY MiB", "DISK GiB", "ISO GiB", "MEMBERS", box=None,
                  header_style="bold")
    for p in projects:
        q = p["quota"]
        table.add_row(p["name"], *(_limit(q[k]) for k in ("instances", "vcpus", "memory_mib", "disk_gib", "iso_gib")),
                      ", ".join(f"{u} ({r})" for u, r in p["members"].items()))
    out.print(table)


def _limit(value: float | int | None) -> str:
    return "-" if value is None else f"{value:g}"


@project_app.command("show")
def project_show(ctx: typer.Context, name: str, db: Path = DB_OPTION,
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Use against each quota (configured sizes, from libvirt, summed over every registered host), the project's VMs
    and members; with several hosts, each host's share and whether it was counted now or kept from its last count."""
    from vmdeck.store.quota import usage_report

    s = stores(db)
    info = s.tenancy.project(name)
    report = {"name": name, **usage_report(s.db, _counted_hosts(ctx), name), "members": info.members}
    if as_json:
        print_json(report)
        return
    out.print(f"[bold]{name}[/bold]: VMs {', '.join(report['vms']) or '(none)'}")
    table = Table("QUOTA", "USED", "LIMIT", box=None, header_style="bold")
    for quota, row in report["quota"].items():
        table.add_row(quota, f"{row['used']:g}", _limit(row["limit"]))
    out.print(table)
    if len(report["hosts"]) > 1 or not report["complete"]:
        out.print(_hosts_table(report["hosts"]))
    out.print("members: " + (", ".join(f"{u} ({r})" for u, r in info.members.items()) or "(none)"))


def _counted_hosts(ctx: typer.Context) -> Any:
    """Where the project's VMs count: every registered host, or the one host (--connect, or only `local`)."""
    return ctx.obj.host() if ctx.obj.single_host() else ctx.obj.fleet()


def _hosts_table(hosts: dict[str, dict[str, Any]]) -> Table:
    table = Table("HOST", "VMs", "vCPUs", "MEMORY MiB", "DISK GiB", "COUNTED", box=None, header_style="bold")
    for host, row in hosts.items():
        if row["counted"] == "unknown":
            table.add_row(host, "?", "?", "?", "?", f"unknown: unreachable, never counted ({row['reason']})")
            continue
        counted = "live" if row["counted"] == "live" else f"kept from {row['counted_at']} (unreachable now)"
        table.add_row(host, str(row["instances"]), str(row["vcpus"]), str(row["memory_mib"]), f"{row['disk_gib']:g}",
                      counted)
    return table


@project_app.command("quota")
def project_quota(
    name: str,
    instances: int = typer.Option(None, "--instances"),
    vcpus: int = typer.Option(None, "--vcpus"),
    memory: int = typer.Option(None, "--memory", help="MiB."),
    disk: float = typer.Option(None, "--disk", help="GiB."),
    iso: float = typer.Option(None, "--iso", help="GiB."),
    networks: int = typer.Option(None, "--networks", help="At most this many networks of the project's own."),
    forwards: int = typer.Option(None, "--forwards", help="At most this many port forwards."),
    unlimited: list[str] = typer.Option([], "--unlimited", help="Remove this limit (instances, vcpus, memory_mib, "
                                        "disk_gib, iso_gib, networks, forwards); may be repeated."),
    db: Path = DB_OPTION,
) -> None:
    """Change a project's limits (those not named stay as they are)."""
    s = stores(db)
    change: dict[str, float | int | None] = _quota(instances, vcpus, memory, disk, iso, networks, forwards)
    change.update(dict.fromkeys(unlimited))
    info = s.tenancy.set_quota(name, change)
    s.record("project.manage", f"project quota {name} {change}", project=name)
    out.print(f"{name}: " + ", ".join(f"{k} {_limit(v)}" for k, v in info.quota.items()))


@project_app.command("delete")
def project_delete(ctx: typer.Context, name: str, db: Path = DB_OPTION) -> None:
    """Delete a project that has no VMs and no ISOs left."""
    from vmdeck.store.quota import project_vms

    s = stores(db)
    s.tenancy.project(name)
    s.tenancy.delete_project(name, project_vms(s.db, _counted_hosts(ctx), name))
    s.record("project.manage", f"project delete {name}", project=name)
    out.print(f"deleted project {name}")


# --- users -------------------------------------------------------------------------------------------
def _password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated): from stdin (one line), else a random one to print once."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        return password, False
    return secrets.token_urlsafe(12), True


@user_app.command("add")
def user_add(
    name: str,
    project: str = typer.Option(None, "--project", help="Member of this project ..."),
    role: str = typer.Option("viewer", "--role", help="... with this role: viewer, operator or manager."),
    admin: bool = typer.Option(False, "--admin", help="A host administrator (every project, users, quotas)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin "
                                        "(else a random one is printed once)."),
    db: Path = DB_OPTION,
) -> None:
    """Create an account (and its membership)."""
    from vmdeck.store.tenancy import check_role

    s = stores(db)
    if project is not None:
        s.tenancy.project(project)
        check_role(role)
    password, generated = _password(password_stdin)
    s.accounts.create_user(name, password, is_admin=admin)
    if project is not None:
        s.tenancy.set_member(name, project, role)
    s.record("user.manage", f"user add {name}" + (f" {project}:{role}" if project else ""), project=project)
    out.print(f"created user [bold]{name}[/bold]" + (f", {role} in {project}" if project else "")
              + (" (administrator)" if admin else ""))
    if generated:
        out.print(f"password: [bold]{password}[/bold]")


@user_app.command("list")
def user_list(db: Path = DB_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    s = stores(db)
    users = s.tenancy.users()
    if as_json:
        print_json(users)
        return
    table = Table("USER", "ADMIN", "DISABLED", "PROJECTS", box=None, header_style="bold")
    for u in users:
        table.add_row(u["username"], "yes" if u["is_admin"] else "", "yes" if u["disabled"] else "",
                      ", ".join(f"{p} ({r})" for p, r in u["projects"].items()))
    out.print(table)


@user_app.command("role")
def user_role(name: str, project: str = typer.Option(..., "--project"),
              role: str = typer.Option(..., "--role", help="viewer, operator, manager, or none to remove."),
              db: Path = DB_OPTION) -> None:
    """Give a user a role in a project (none: take the membership, and its tokens, away)."""
    s = stores(db)
    if role == "none":
        s.tenancy.remove_member(name, project)
    else:
        s.tenancy.set_member(name, project, role)
    s.record("user.manage", f"user role {name} {project}:{role}", project=project)
    out.print(f"{name}: {role} in {project}")


@user_app.command("disable")
def user_disable(name: str, enable: bool = typer.Option(False, "--enable", help="Enable again."),
                 db: Path = DB_OPTION) -> None:
    """Stop an account from signing in (its sessions end, its tokens stop working)."""
    s = stores(db)
    s.tenancy.set_disabled(name, not enable)
    s.record("user.manage", f"user {'enable' if enable else 'disable'} {name}")
    out.print(f"{name}: {'enabled' if enable else 'disabled'}")


@user_app.command("remove")
def user_remove(name: str, db: Path = DB_OPTION) -> None:
    """Delete an account with its memberships, sessions and tokens."""
    s = stores(db)
    s.tenancy.remove_user(name)
    s.record("user.manage", f"user remove {name}")
    out.print(f"removed user {name}")


@user_app.command("passwd")
def user_passwd(name: str, password_stdin: bool = typer.Option(False, "--password-stdin"),
                db: Path = DB_OPTION) -> None:
    """Set a user's password (root's recovery): from stdin, or a random one printed once. Ends their sessions."""
    s = stores(db)
    password, generated = _password(password_stdin)
    s.accounts.reset_password(name, password)
    s.record("user.manage", f"user passwd {name}")
    out.print(f"{name}: password set, every session of theirs ended")
    if generated:
        out.print(f"password: [bold]{password}[/bold]")


# --- VMs and the audit log ---------------------------------------------------------------------------
@vm_app.command("adopt")
def vm_adopt(ctx: typer.Context, name: str, project: str = typer.Option(..., "--project"),
             db: Path = DB_OPTION) -> None:
    """Record a VM (made by virt-install, virsh, or in another project) as belonging to PROJECT."""
    from vmdeck.usecases import Actor, Services
    from vmdeck.usecases.vms import adopt

    s = stores(db)
    before = adopt(Services(s.db, s.tenancy, s.audit), Actor.cli(f"vm adopt {name} --project {project}"),
                   ctx.obj.host(), name, project)
    out.print(f"{name}: now in project {project}" + (f" (was {before})" if before else ""))


def audit(
    project: str = typer.Option(None, "--project", help="Only this project."),
    vm: str = typer.Option(None, "--vm", help="Only this VM."),
    limit: int = typer.Option(50, "--limit"),
    prune_days: float = typer.Option(None, "--prune-older-than", help="Delete entries older than this many days "
                                     "(retention) instead of listing."),
    db: Path = DB_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The audit log, newest first: who did what, when, to which VM, and how it ended."""
    s = stores(db)
    if prune_days is not None:
        gone = s.audit.prune(prune_days)
        s.record("audit.prune", f"audit --prune-older-than {prune_days:g} ({gone} entries)")
        out.print(f"deleted {gone} audit entries older than {prune_days:g} days")
        return
    entries = s.audit.entries([project] if project else None, vm=vm, limit=limit)
    if as_json:
        print_json(entries)
        return
    table = Table("WHEN (UTC)", "USER", "PROJECT", "ACTION", "VM", "STATUS", "RESULT", box=None, header_style="bold")
    for e in entries:
        table.add_row(e["at"][:19].replace("T", " "), f"{e['user']} ({e['via']})", e["project"] or "-", e["action"],
                      e["vm"] or "", str(e["status"]), e["result"])
    out.print(table)


def register(app: typer.Typer) -> None:
    from vmdeck.cli.project_network_cmds import networks

    project_app.command("networks")(networks)
    app.add_typer(project_app, name="project")
    app.add_typer(user_app, name="user")
    app.add_typer(vm_app, name="vm")
    app.command()(audit)

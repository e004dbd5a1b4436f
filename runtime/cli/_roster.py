"""`baton agents`: the actors connected to a runtime now, and how loaded each role is."""

from __future__ import annotations

import time

from rich.text import Text

from protocols import AgentsReply
from runtime.cli._connection import Connection, connected
from runtime.cli._console import out, print_json
from runtime.cli._options import JsonOption
from runtime.cli._sheets import Sheet, show


def roles_sheet(found: AgentsReply) -> Sheet:
    sheet = Sheet(
        f"{len(found.roles)} role(s)",
        ("role", "instances", "capacity", "running", "queued", "crash-looping"),
        whole=("role",),
    )
    for role in found.roles:
        looping = Text("yes", style="bold red") if role.crash_looping else Text("no")
        sheet.add(
            role.role, str(role.instances), str(role.capacity), str(role.running),
            str(role.queued), looping,
        )  # fmt: skip
    return sheet


def agents_sheet(found: AgentsReply) -> Sheet:
    sheet = Sheet(
        f"{len(found.agents)} actor(s) connected",
        ("name", "role", "kind", "principal", "capacity", "running", "connected (UTC)", "tools"),
        whole=("name", "role", "kind", "principal"),
    )
    for agent in found.agents:
        sheet.add(
            agent.name, agent.role, agent.kind.replace("_", " "), agent.principal or "-",
            str(agent.capacity), str(agent.running),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(agent.connected_at)),
            ", ".join(agent.tools) or "-",
        )  # fmt: skip
    return sheet


@connected
def agents(as_json: JsonOption = False, *, connection: Connection) -> None:
    """The agents and tool hosts connected to the runtime now, and each role's load: its
    instances, capacity, steps running and queued, and whether it is crash-looping."""
    found = connection.call(lambda client: client.agents())
    if as_json:
        print_json({"roles": found.roles, "agents": found.agents})
        return
    show(out, roles_sheet(found), titled=True)
    show(out, agents_sheet(found), titled=True)

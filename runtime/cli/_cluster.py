"""`baton cluster`: the runtimes sharing one PostgreSQL database, their leases and load."""

from __future__ import annotations

import time

from protocols import MembersReply
from runtime.cli._connection import Connection, connected
from runtime.cli._console import out, print_json
from runtime.cli._options import JsonOption
from runtime.cli._sheets import Sheet, show


def members_sheet(cluster: MembersReply) -> Sheet:
    sheet = Sheet(
        f"{len(cluster.members)} runtime(s) on {cluster.store}",
        ("token", "runtime", "agents", "control", "lease", "runs held", "runs active", "up"),
        whole=("token", "runtime", "agents", "control"),
    )
    now = time.time()
    for member in cluster.members:
        lease = (
            f"{member.expires_in:.1f}s left"
            if member.expires_in > 0
            else f"lapsed {-member.expires_in:.1f}s ago"
        )
        here = " (this one)" if member.token == cluster.here else ""
        sheet.add(
            str(member.token), member.name + here, member.agents, member.control, lease,
            str(member.owned), str(member.active), _age(now - member.started_at),
        )  # fmt: skip
    return sheet


def takeovers_sheet(cluster: MembersReply) -> Sheet:
    sheet = Sheet(
        f"{len(cluster.takeovers)} recent takeover(s)",
        ("when (UTC)", "lapsed token", "runtime", "runs", "taken by token", "lapsed for"),
        whole=("lapsed token", "runtime", "taken by token"),
    )
    for takeover in cluster.takeovers:
        sheet.add(
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(takeover.at)),
            str(takeover.token), takeover.name, str(takeover.runs), str(takeover.by_token),
            f"{takeover.lapsed_for:.2f}s",
        )  # fmt: skip
    return sheet


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@connected
def cluster(as_json: JsonOption = False, *, connection: Connection) -> None:
    """The runtimes of the connected runtime's cluster: leases, runs held, recent takeovers.

    Asks any one of them; a runtime whose store is not PostgreSQL is not one of a cluster.
    """
    found = connection.call(lambda client: client.members())
    if as_json:
        print_json(found)
        return
    show(out, members_sheet(found))
    if found.takeovers:
        show(out, takeovers_sheet(found))

"""Several runtimes on one PostgreSQL database: leases, takeover, and a server to try it on.

Each run is owned by one runtime at a time through a lease with a fencing token;
a runtime whose lease lapsed writes and sends nothing more for its runs, and the
others take them up as crash recovery does. `LocalPostgres` starts a server of
the project's own for the demo, the tests and the bench.
"""

from runtime.cluster._local_postgres import LocalPostgres as LocalPostgres
from runtime.cluster._local_postgres import LocalPostgresError as LocalPostgresError
from runtime.cluster._local_postgres import server_binaries as server_binaries

__all__ = ["LocalPostgres", "LocalPostgresError", "server_binaries"]

"""The ROUTER socket a runtime binds for each plane: bounded, CURVE when secure, monitored."""

from __future__ import annotations

import zmq

from runtime.planes._refusals import CONNECTION_CLOSED, HANDSHAKE_FAILURES
from runtime.security._authenticator import ZAP_DOMAIN
from runtime.supervisor._config import RuntimeConfig, Security


def bind_router(
    ctx: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    config: RuntimeConfig,
    security: Security | None,
    *,
    watch_closes: bool = False,
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes] | None]:
    """A ROUTER bound to `endpoint`, and the monitor reporting its failed handshakes (when
    secure) and, with `watch_closes`, its closed connections (None if neither)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.SNDHWM, config.queue_limit)
    sock.setsockopt(zmq.RCVHWM, config.receive_queue)
    # A frame a little over the limit still reaches the codec, which answers it
    # with a typed error; ZeroMQ silently drops a larger one and its connection.
    sock.setsockopt(zmq.MAXMSGSIZE, config.max_frame + 1024)
    if endpoint.startswith("tcp://[") or endpoint.startswith("tcp://::"):
        sock.setsockopt(zmq.IPV6, 1)
    if security is not None:
        sock.curve_server = True
        sock.curve_secretkey = security.keys.secret
        sock.curve_publickey = security.keys.public
        sock.zap_domain = ZAP_DOMAIN.encode()
    events = (HANDSHAKE_FAILURES if security is not None else 0) | (
        CONNECTION_CLOSED if watch_closes else 0
    )
    monitor = sock.get_monitor_socket(events) if events else None
    try:
        sock.bind(endpoint)
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    return sock, monitor

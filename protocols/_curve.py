"""CURVE key material as both sides of a plane hold it."""

from __future__ import annotations

import re
from dataclasses import dataclass

Z85_KEY = re.compile(rb"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
"""A 32-byte CURVE key in Z85: 40 characters."""

WELL_KNOWN_TEST_KEYS: frozenset[bytes] = frozenset(
    {
        b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
        b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
        b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
        b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6",
    }
)
"""The example keys printed in the zmq_curve manual page: public, so never trusted."""


def is_z85_key(value: bytes) -> bool:
    """Whether `value` is a 40-character Z85 key."""
    return Z85_KEY.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """The runtime's own key pair, Z85-encoded."""

    public: bytes
    secret: bytes


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """A principal's key pair and the runtime public key it trusts, all Z85-encoded."""

    principal: str
    """The principal these keys belong to, for messages; identity is the key itself."""
    public: bytes
    secret: bytes
    server: bytes

"""Who may connect and what they may do: CURVE keys on disk, principals, ZAP.

A key directory holds the runtime's key pair and `principals.json`; every
connecting key maps to a `Principal` with roles, and the ZAP `Authenticator`
admits only those.
"""

from runtime.security._authenticator import ZAP_DOMAIN as ZAP_DOMAIN
from runtime.security._authenticator import Authenticator as Authenticator
from runtime.security._authenticator import PrincipalBook as PrincipalBook
from runtime.security._certificates import KeysInvalid as KeysInvalid
from runtime.security._keys import DEFAULT_KEYS_DIR as DEFAULT_KEYS_DIR
from runtime.security._keys import RUNTIME as RUNTIME
from runtime.security._keys import add_principal as add_principal
from runtime.security._keys import init_keys as init_keys
from runtime.security._keys import keys_dir as keys_dir
from runtime.security._keys import load_client_keys as load_client_keys
from runtime.security._keys import load_principals as load_principals
from runtime.security._keys import load_public_key as load_public_key
from runtime.security._keys import load_server_keys as load_server_keys
from runtime.security._keys import remove_principal as remove_principal
from runtime.security._principals import APPROVER_PREFIX as APPROVER_PREFIX
from runtime.security._principals import Principal as Principal
from runtime.security._principals import Principals as Principals
from runtime.security._principals import PrincipalsInvalid as PrincipalsInvalid
from runtime.security._principals import RoleInvalid as RoleInvalid
from runtime.security._principals import check_role as check_role

__all__ = [
    "APPROVER_PREFIX",
    "DEFAULT_KEYS_DIR",
    "RUNTIME",
    "ZAP_DOMAIN",
    "Authenticator",
    "KeysInvalid",
    "Principal",
    "PrincipalBook",
    "Principals",
    "PrincipalsInvalid",
    "RoleInvalid",
    "add_principal",
    "check_role",
    "init_keys",
    "keys_dir",
    "load_client_keys",
    "load_principals",
    "load_public_key",
    "load_server_keys",
    "remove_principal",
]

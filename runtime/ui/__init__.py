"""`baton ui`: pages for the people who look, decide and act, served beside a runtime.

The server is a control-plane client acting as one principal, whose key it holds:
every read and every action is a request the runtime checks. It binds loopback by
default, admits the bearer of the token it prints, and keeps pages live with
server-sent events fed by the runtime's long polls.
"""

from runtime.ui._app import create_app as create_app
from runtime.ui._sessions import new_token as new_token
from runtime.ui._settings import UiSettings as UiSettings

__all__ = ["UiSettings", "create_app", "new_token"]

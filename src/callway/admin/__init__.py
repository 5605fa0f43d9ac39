"""Operations surface of a node: admin HTTP API, live dashboard, Prometheus metrics.

The composition roots adapt themselves to :class:`AdminBackend`
(``callway.app.admin_backends``) and call :func:`start_admin`.
"""

from callway.admin.backend import AdminBackend
from callway.admin.server import AdminServer, build_app, start_admin

__all__ = ["AdminBackend", "AdminServer", "build_app", "start_admin"]

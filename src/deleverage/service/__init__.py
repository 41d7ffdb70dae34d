"""The real-time risk service: HTTP + WebSocket API over the engine, backed by a database.

Start it with ``deleverage serve`` (:mod:`deleverage.cli.serve`) or build the FastAPI app with
:func:`create_app`. Modules: :mod:`~deleverage.service.settings` (configuration),
:mod:`~deleverage.service.storage` (SQLAlchemy tables), :mod:`~deleverage.service.auth` (keys,
roles, rate limits), :mod:`~deleverage.service.runtime` (engine, lock, commit-then-answer),
:mod:`~deleverage.service.alerts` (notifications from events),
:mod:`~deleverage.service.notifications` (WebSocket fan-out), :mod:`~deleverage.service.views`
(read models), :mod:`~deleverage.service.schemas` (request bodies),
:mod:`~deleverage.service.app` (routes). User guide: docs/service.md.
"""

from deleverage.service.app import create_app
from deleverage.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]

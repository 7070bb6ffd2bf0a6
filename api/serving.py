"""How gunicorn runs the app: its logger and its worker class
(``api/gunicorn.conf.py`` names both)."""

from __future__ import annotations

from typing import Any, ClassVar

from gunicorn.glogging import Logger
from uvicorn_worker import UvicornWorker

from core.logging import configure_logging
from core.settings import get_settings


class GunicornLogger(Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's own messages go through the shared configuration
    (core.logging) instead of gunicorn's handlers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True
        settings = get_settings().app
        configure_logging(settings.log_level, settings.effective_log_format)


class Worker(UvicornWorker):  # type: ignore[misc]  # so is uvicorn-worker
    """uvicorn without its Server header (the proxy sends its own) and without
    its proxy-header handling. Its access log is off too: see core.logging."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "server_header": False,
        # The app reads X-Forwarded-* itself (api/proxy.py): uvicorn's "*"
        # would believe the left-most, client-written address.
        "proxy_headers": False,
    }

"""Logging set-up shared by every process."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Log to stdout at ``level``; idempotent."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_appstack", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._appstack = True  # type: ignore[attr-defined]
        root.addHandler(handler)

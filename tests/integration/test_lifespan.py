"""What the api's start-up does to its process beyond opening connections."""

from __future__ import annotations

import gc

from api.main import create_app
from core.settings import Settings


async def test_start_up_objects_are_kept_out_of_garbage_collections(settings: Settings) -> None:
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        # The modules, the app and its routes: a full collection skips them.
        assert gc.get_freeze_count() > 10_000
        assert app.router.routes[0] not in gc.get_objects()
    assert gc.get_freeze_count() == 0

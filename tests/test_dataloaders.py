"""The page loader gives the same page for a parent whether it is asked alone
(LIMIT/OFFSET) or together with others (ROW_NUMBER over partitions)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from backend.bands.models import Band
from backend.graphql.database import RequestDatabase
from backend.graphql.dataloaders import page_by_parent
from backend.graphql.relay import PageRequest
from backend.library import repository
from backend.library.models import Track
from backend.library.titles import normalize_title


async def test_page_alone_equals_page_among_others(session_factory):
    async with session_factory() as db:
        bands = [Band(name=f"B{n}", slug=f"b{n}") for n in range(3)]
        db.add_all(bands)
        await db.flush()
        for band in bands:
            for index in (5, 3, 9, 1, 7, 2, 8):
                title = f"{band.name} song {index}"
                db.add(Track(band_id=band.id, title=title, normalized_title=normalize_title(title)))
        await db.commit()
        band_ids = [band.id for band in bands]

    for order in repository.TrackOrder:
        for page in (PageRequest(0, 3), PageRequest(3, 3), PageRequest(6, 3), PageRequest(0, 0)):

            async def load(keys: list[int], page=page, order=order) -> list[list[int]]:
                async with session_factory() as session:
                    loader = page_by_parent(
                        RequestDatabase(session),
                        base=select(Track),
                        entity=Track,
                        parent=Track.band_id,
                        order_by=repository.track_order(order),
                        page=page,
                    )
                    pages = await asyncio.gather(*(loader.load(key) for key in keys))
                    return [[track.title for track in rows] for rows in pages]

            together = await load(band_ids)
            for band_id, expected in zip(band_ids, together, strict=True):
                assert await load([band_id]) == [expected], (order, page)
            assert len(together[0]) == min(page.limit + 1, max(0, 7 - page.offset))

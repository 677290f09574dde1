"""Retention (SPEC §10) for media: a file older than its retention goes with its bytes, wherever
they are kept (the data folder, or PostgreSQL's chunks), and younger ones stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from tests.support import media_samples as samples
from tests.support.harness import Harness
from wagate.dispatch.pruner import Pruner
from wagate.store.db import write_tx
from wagate.store.tables import media, media_chunks


async def test_old_files_are_deleted_with_their_bytes(gateway: Harness) -> None:
    ids = []
    for content in (samples.png(pad_to=1_200_000), samples.pdf()):
        answer = await gateway.client.post(
            "/v1/media", files={"file": ("f", content)}, headers=gateway.auth
        )
        ids.append(answer.json()["id"])
    old, young = ids
    async with write_tx(gateway.engine) as conn:
        await conn.execute(
            update(media)
            .where(media.c.id == old)
            .values(created_at=gateway.clock.now() - timedelta(days=31))
        )
    pruner = Pruner(engine=gateway.engine, settings=gateway.settings, clock=gateway.clock)
    deleted = await pruner.prune(pause=0)
    assert deleted["media"] == 1

    gone = await gateway.client.get(f"/v1/media/{old}", headers=gateway.auth)
    assert gone.status_code == 404
    kept = await gateway.client.get(f"/v1/media/{young}", headers=gateway.auth)
    assert kept.status_code == 200 and kept.content == samples.pdf()
    if gateway.engine.dialect.name == "postgresql":
        async with gateway.engine.connect() as conn:
            chunks = await conn.scalar(
                select(func.count()).select_from(media_chunks).where(media_chunks.c.media_id == old)
            )
        assert chunks == 0
    else:
        files = [p.name for p in (gateway.settings.data_dir / "media").rglob("med_*")]
        assert files == [young]

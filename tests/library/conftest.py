"""Fixtures shared by the library tests."""

from __future__ import annotations

import pytest

from tests.graphql_client import gql, register
from tests.library.test_scan import ADD_SOURCE


@pytest.fixture
async def band_with_folder(client, tmp_path_factory):
    token, _ = await register(client, "scanner")
    band = (
        await gql(client, 'mutation { createBand(input: {name: "Fuzz"}) { id } }', token=token)
    ).ok()
    band_id = band["createBand"]["id"]
    folder = tmp_path_factory.mktemp("rehearsals")
    source = (
        await gql(client, ADD_SOURCE, {"band": band_id, "root": str(folder)}, token=token)
    ).ok()
    return token, band_id, source["addSource"]["id"], folder

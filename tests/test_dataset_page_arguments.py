"""The paging arguments of a dataset page's files are named as the page
calls them when they are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from test_pages import visible_text

from catalog.config import load_config
from web.app import create_app

ZEE_EVNT = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("files_limit=0", "files_limit must be between 1 and 1000, got 0"),
        ("files_offset=-1", "files_offset must be 0 or more, got -1"),
    ],
)
def test_a_bad_files_page_names_its_argument(
    catalog_engine: Engine,
    tmp_path: Path,
    dataset_factory: Any,
    query: str,
    said: str,
) -> None:
    dataset_factory(ZEE_EVNT)
    app = create_app(load_config(env={}, data_dir=str(tmp_path)), engine=catalog_engine)

    response = app.test_client().get(f"/datasets/{ZEE_EVNT}?{query}")

    assert response.status_code == 400
    assert said in visible_text(response)

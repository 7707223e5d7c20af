"""Reading a ProdSys stream from a SQLite source: each bite is one range of
the ``(timestamp, key)`` index, however far into the stream it starts, so
ingesting a large source takes time in proportion to its rows.
"""

from __future__ import annotations

import datetime as dt

from ingest import schemas
from ingest.keyset import Cursor, KeysetStream
from ingest.simulate import ProdSysSource

ROWS = 50_000
START = dt.datetime(2026, 12, 1)


def _file(fileid: int) -> dict[str, object]:
    return {
        "fileid": fileid,
        "dataset": "mc16_13TeV.999001.Audit_Zee.evgen.EVNT.e3601",
        "lfn": f"EVNT.{fileid:08d}._000001.pool.root.1",
        "timestamp": START + dt.timedelta(milliseconds=fileid),
    }


def test_a_bite_deep_into_a_stream_costs_what_the_first_one_does(tmp_path):
    source = ProdSysSource(f"sqlite:///{tmp_path / 'prodsys.sqlite'}").create()
    source.insert(schemas.t_production_file, [_file(n) for n in range(ROWS)])
    keyset = KeysetStream(schemas.t_production_file, key_column="fileid", lag=0)

    def work(fileid: int) -> int:
        """SQLite's steps (thousands of virtual machine instructions) to
        read, checks included, the bite of 100 files after *fileid*.
        """
        steps = [0]
        with source.engine.connect() as connection:
            sqlite = connection.connection.driver_connection
            sqlite.set_progress_handler(
                lambda: steps.__setitem__(0, steps[0] + 1), 1000
            )
            keyset.cursor = Cursor(_file(fileid)["timestamp"], fileid)
            batch = keyset.read(connection, 100)
            sqlite.set_progress_handler(None, 0)
        assert [row.fileid for row in batch.rows] == list(
            range(fileid + 1, fileid + 101)
        )
        return steps[0]

    first, deep = work(0), work(ROWS - 200)

    source.engine.dispose()
    assert deep <= first + 5, (first, deep)

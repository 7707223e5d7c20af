"""The SQL a test's code sends to the database: for the structural guards
(how many queries, what shape, what plan), beside the assertions on what a
user sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


class Sent(str):
    """One statement as sent: its SQL (the string itself) and
    :attr:`parameters`, as the driver got them.
    """

    parameters: Any

    def __new__(cls, sql: str, parameters: Any) -> Sent:
        sent = super().__new__(cls, sql)
        sent.parameters = parameters
        return sent


@contextmanager
def statements_of(engine: Engine) -> Iterator[list[Sent]]:
    """The statements sent on *engine* inside the block, in order."""
    sent: list[Sent] = []

    def keep(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        sent.append(Sent(sql, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", keep)

"""Reading bites ahead in a process of its own, for a large backlog.

A bite read ahead on a thread (``ingest.bites``) overlaps the writer less
than it seems: mapping rows is Python work, and it holds the interpreter's
lock that the writer needs too. On SQLite, whose driver lets the lock go and
takes it again for every row it writes, the writer waits for most of the
time the reader maps. While a large backlog drains, the ProdSys ingester
therefore reads ahead in a process of its own, on another core:

- the process runs ``python -m ingest.readprocess`` with the interpreter of
  the ingester, in a session of its own (a Ctrl-C meant for the task server
  does not reach it), and is started before it is needed: bites are read
  ahead on the thread until it says it is ready;
- a request is the stream (its keyset, cursor included), the mapper and the
  number of rows; the answer is the bite and where the stream's cursor stands
  after it. The ingester's cursor moves only when it takes the answer, so a
  bite given back leaves it where it was, as on the thread. Rows that are
  named tuples (files) come back as plain tuples: quicker to unpickle, and
  left alone by the garbage collector;
- the process reads its requests from its standard input: when the ingester
  ends, even by ``kill -9``, that input closes and the process exits. The
  ingester stops it by closing it too;
- if the process fails, the bite is read by the ingester itself, and bites
  are read ahead on the thread from then on.

The process opens the source by its URL alone (options the ingester's engine
was made with are not carried over), so the source must be a database
another process can open: not an in-memory SQLite database.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import pickle
import select
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any, NamedTuple

from sqlalchemy import Engine, create_engine

from ingest.bites import Bite, BiteReader
from ingest.keyset import Cursor
from ingest.values import Mapped

logger = logging.getLogger(__name__)

READY = "ready"


def can_read(source: Engine) -> bool:
    """Whether a process of its own can open *source* (a server database or
    an SQLite file, not an in-memory SQLite database).
    """
    url = source.url
    if url.get_backend_name() != "sqlite":
        return True
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(url)
    return not in_memory


class ReadProcess:
    """A process that reads bites of *source* ahead; see the module's notes.

    Starting it returns at once: :meth:`ready` says when it can take requests,
    once it has imported *modules* (those of the mappers it will be sent:
    light modules, such as ``ingest.prodsysrows``, make it ready sooner).
    """

    def __init__(self, source: Engine, modules: Sequence[str] = ()) -> None:
        self.failed = False
        self._ready = False
        self._waiting: PendingBite | None = None
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ingest.readprocess"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            env=_environment(),
        )
        self._requests: IO[bytes] = self._process.stdin  # type: ignore[assignment]
        self._answers: IO[bytes] = self._process.stdout  # type: ignore[assignment]
        try:
            self._send((source.url.render_as_string(hide_password=False), modules))
        except OSError as err:  # it could not start
            self._fail(err)

    @property
    def pid(self) -> int:
        return self._process.pid

    def ready(self) -> bool:
        """Whether the process has started and can take requests (never
        after it failed). Does not wait.
        """
        if self._ready or self.failed:
            return self._ready and not self.failed
        try:
            answered, _, _ = select.select([self._answers], [], [], 0)
            if answered:
                self._take_ready()
        except (OSError, EOFError, pickle.UnpicklingError) as err:
            self._fail(err)
        return self._ready and not self.failed

    def submit(self, reader: BiteReader, limit: int) -> PendingBite:
        """Ask for the next bite of *reader*'s stream, of at most *limit*
        rows; :meth:`PendingBite.result` takes it.
        """
        if self._waiting is not None:  # answers come in the order asked
            self._waiting.drop()
        pending = PendingBite(self, reader, limit)
        try:
            self._send((reader.keyset, reader.mapper, reader.key, limit))
        except Exception as err:  # gone, or a request it cannot be sent
            self._fail(err)
        self._waiting = pending
        return pending

    def close(self, timeout: float = 5.0) -> None:
        """Stop the process: close its input, and kill it if it does not
        end within *timeout* seconds.
        """
        for stream in (self._requests, self._answers):
            try:
                stream.close()
            except OSError:
                pass  # the process had gone: nothing left to flush
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _send(self, message: Any) -> None:
        pickle.dump(message, self._requests, pickle.HIGHEST_PROTOCOL)
        self._requests.flush()

    def _receive(self) -> Any:
        """The next answer (after the word that the process is ready)."""
        if not self._ready:
            self._take_ready()
        return pickle.load(self._answers)

    def _take_ready(self) -> None:
        if pickle.load(self._answers) != READY:
            raise EOFError("the process's first answer is not that it is ready")
        self._ready = True

    def _fail(self, err: BaseException) -> None:
        if not self.failed:
            logger.warning(
                "The process reading ProdSys bites ahead (pid %d) failed: %r; "
                "reading on a thread instead",
                self._process.pid,
                err,
            )
        self.failed = True


class PendingBite:
    """A bite asked of a :class:`ReadProcess`, taken with :meth:`result`."""

    def __init__(self, process: ReadProcess, reader: BiteReader, limit: int) -> None:
        self._process = process
        self._reader = reader
        self._limit = limit
        self._before = reader.keyset.cursor
        self._bite: Bite | None = None
        self._error: Exception | None = None
        self._settled = False

    def result(self) -> Bite:
        """The bite; the stream's cursor moves past it the first time.

        :raises Exception: the error that reading the bite met.
        """
        self.settle()
        if self._error is not None:
            raise self._error
        assert self._bite is not None
        return self._bite

    def settle(self) -> None:
        """Take the process's answer, or read the bite here if it failed."""
        if self._settled:
            return
        self._settled = True
        answer = self._answer()
        if answer is None:
            self._read_here()
        elif answer[0] == "failed":
            self._error = answer[1]
        else:
            _, bite, self._reader.keyset.cursor = answer
            self._bite = _unpacked(bite)

    def drop(self) -> None:
        """Take the process's answer, if not yet taken, and leave it: a bite
        neither taken nor given back, which the stream's cursor never passed.
        """
        if not self._settled:
            self._settled = True
            self._answer()
            self._error = RuntimeError("a bite read ahead was left, not taken")

    def _answer(self) -> tuple[Any, ...] | None:
        """The process's answer (None if it failed)."""
        if self._process.failed:
            return None
        try:
            answer: tuple[Any, ...] = self._process._receive()
        except (OSError, EOFError, pickle.UnpicklingError) as err:
            self._process._fail(err)
            return None
        return answer

    def _read_here(self) -> None:
        self._reader.keyset.cursor = self._before
        try:
            self._bite = self._reader.read(self._limit)
        except Exception as err:  # as on a thread: the error is the result's
            self._error = err


def _environment() -> dict[str, str]:
    """The environment of the process: the ingester's, with its module path,
    so that it imports the same code.
    """
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return environment


def _packed(bite: Bite) -> Bite:
    """*bite* with rows that are named tuples as plain tuples, which take a
    tenth of the time to unpickle and which the garbage collector leaves
    alone (the writer of such rows reads them by position); rows that are
    dictionaries with the same keys as :class:`DictRows`.
    """
    good = bite.mapped.good
    if good and all(isinstance(row, dict) for row in good):
        keys = tuple(good[0])
        if all(tuple(row) == keys for row in good):
            rows = DictRows(keys, [tuple(row.values()) for row in good])
            return dataclasses.replace(bite, mapped=Mapped(rows, bite.mapped.refused))  # type: ignore[arg-type]
    if not all(isinstance(row, tuple) for row in good):
        return bite
    plain = [tuple(row) for row in good]
    return dataclasses.replace(bite, mapped=Mapped(plain, bite.mapped.refused))


class DictRows(NamedTuple):
    """Dictionaries with the same keys, as the keys and a tuple of values
    each: a third quicker to unpickle and build again than the dictionaries.
    """

    keys: tuple[str, ...]
    values: list[tuple[Any, ...]]


def _unpacked(bite: Bite) -> Bite:
    """*bite* as it was before :func:`_packed`."""
    good = bite.mapped.good
    if not isinstance(good, DictRows):
        return bite
    rows = [dict(zip(good.keys, values, strict=True)) for values in good.values]
    return dataclasses.replace(bite, mapped=Mapped(rows, bite.mapped.refused))


def _answer(source: Engine, request: tuple[Any, ...]) -> tuple[Any, ...]:
    """Read the bite that *request* asks for: ("read", bite, cursor after it)
    or ("failed", the error).
    """
    keyset, mapper, key, limit = request
    reader = BiteReader(source, keyset, mapper, key, _no_thread)
    try:
        bite = reader.read(limit)
    except Exception as err:
        return ("failed", _portable(err))
    cursor: Cursor | None = keyset.cursor
    return ("read", _packed(bite), cursor)


def _no_thread() -> Any:
    raise RuntimeError("the reading process reads no bite ahead itself")


def _portable(err: Exception) -> Exception:
    """*err*, or a RuntimeError saying what it was if it cannot be pickled."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err


def main() -> None:
    """Serve requests from standard input until it closes (see the module)."""
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints: stderr
    try:
        url, modules = pickle.load(requests)
        source = create_engine(url)
        for module in modules:  # before it is ready: the thread reads meanwhile
            importlib.import_module(module)
        _reply(answers, READY)
        while True:
            _reply(answers, _answer(source, pickle.load(requests)))
    except (EOFError, BrokenPipeError):
        pass  # the ingester closed us, or has ended
    finally:
        try:
            answers.close()
        except BrokenPipeError:
            pass  # an answer nobody will read


def _reply(answers: IO[bytes], answer: Any) -> None:
    pickle.dump(answer, answers, pickle.HIGHEST_PROTOCOL)
    answers.flush()


if __name__ == "__main__":
    # This module's own copy, not __main__'s: what it pickles (DictRows) must
    # be found under its name by the ingester.
    from ingest import readprocess

    readprocess.main()
    sys.stderr.flush()
    os._exit(0)  # nothing to tidy: the ingester need not wait for a teardown

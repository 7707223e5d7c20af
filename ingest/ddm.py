"""The DDM ingester: Rucio's events from an ActiveMQ destination, over STOMP.

Three parts, so that no message is lost and stomp.py's receiver thread is
never slowed down (DESIGN.md, "Lessons"):

- a named *supervisor* thread connects with heartbeats, subscribes
  (``client-id`` on CONNECT, ``ack: client-individual`` and a bounded
  ``activemq.prefetchSize`` on SUBSCRIBE; durably, with
  ``activemq.subscriptionName``, to a topic: a queue keeps its messages by
  itself) and, after any drop, builds a new connection and subscribes again,
  with backoff.
  stomp.py's own reconnection only covers the first connect, and reconnecting
  inside ``on_disconnected`` is known to fail silently;
- the *listener* only puts each frame on a bounded queue;
- :meth:`DdmIngester.run`, called by the task server, takes frames from the
  queue, applies them in catalogue transactions, commits, and only then
  acknowledges them. After a crash the broker redelivers what was not
  acknowledged, and ``ddm_message`` recognises what was already applied.

A frame received on a connection that has since dropped is applied but not
acknowledged: an ACK names a delivery of the old connection, and the broker
redelivers the message on the new one anyway.

A broker that stays out of reach is a state in the task server (the
supervisor keeps trying; runs report an unknown backlog and why) and a
failure for ``hepcat ingest --once`` (``fail_unreachable``: a run raises
:class:`BrokerUnreachable`). So is a broker that answers but refuses the
subscription (an ERROR frame): the supervisor keeps trying, and ``--once``
fails with :class:`SubscriptionRefused`, quoting the broker.

The durable subscription is the pair (client id, subscription name): the
broker keeps one connection per client id, and drops a subscription (and the
messages it kept) when the same pair subscribes to another destination. So
each catalogue has an identity of its own (settings ``ddm_client_id`` and
``ddm_subscription``). The client id is chosen once per catalogue and stored
in it (:func:`settle_client_id`), so that all its processes agree however
they spell its URL. When another connection holds the client id (a task
server of the same catalogue), the broker refuses with "already connected":
that is :class:`ClientIdInUse`, and a ``--once`` run skips DDM rather than
fail, since that other process ingests the messages.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stomp
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from stomp.exception import ConnectFailedException, StompException

from catalog.config import STOMP_BROKER
from catalog.db import utcnow
from catalog.ddm import (
    APPLIED,
    DROPPED,
    DUPLICATE,
    IGNORED,
    QUARANTINED,
    apply_messages,
    ingested_before,
    record_unreadable,
)
from catalog.derived import refresh_changed
from catalog.errors import ConfigError, HepcatError
from catalog.operations import get_stop_point, set_stop_point
from taskserver.base import RunContext, RunOutcome, Task

logger = logging.getLogger(__name__)

DEFAULT_DESTINATION = "/topic/rucio.events"
#: How a topic's name starts: a subscription to it is durable. A queue keeps
#: its messages by itself, and the broker refuses a durable subscription.
TOPIC = "/topic/"
#: The durable subscription's name when the ``ddm_subscription`` setting is
#: not set (and hepcat's client id before there was a setting: ``hepcat``).
DEFAULT_SUBSCRIPTION = "hepcat-ddm"
LEGACY_CLIENT_ID = "hepcat"

# Database errors worth trying again: the frames are kept for the next run.
TRANSIENT = (OperationalError, InterfaceError)

#: Seconds without a subscription after which the broker counts as
#: unreachable: the backlog is reported unknown, or, for ``hepcat ingest
#: --once``, the run fails.
PATIENCE = 30.0


class BrokerUnreachable(HepcatError, ConnectionError):
    """The DDM ingester has had no subscription on its broker for a while."""

    def __init__(self, address: BrokerAddress, seconds: float, reason: str) -> None:
        super().__init__(
            f"cannot reach the DDM broker {address} (no subscription for "
            f"{seconds:.0f} s): {reason}; check HEPCAT_DDM_BROKER and that the "
            "broker is running"
        )


class SubscriptionRefused(BrokerUnreachable):
    """The DDM broker answers, but has refused the ingester's subscription
    for a while.
    """

    def __init__(
        self, address: BrokerAddress, destination: str, seconds: float, reason: str
    ) -> None:
        HepcatError.__init__(
            self,
            f"the DDM broker {address} refuses the subscription to {destination} "
            f"(no subscription for {seconds:.0f} s): {reason}; check "
            "HEPCAT_DDM_DESTINATION and the broker's permissions",
        )


class ClientIdInUse(HepcatError, ConnectionError):
    """The broker refused the connection: another one holds the client id."""

    def __init__(self, address: BrokerAddress, client_id: str) -> None:
        super().__init__(
            f"the DDM broker {address} has another connection with client id "
            f"{client_id!r}: another hepcat process (a task server of this "
            "catalogue) holds it and ingests DDM; stop that process first, or "
            "give this catalogue a client id of its own (HEPCAT_DDM_CLIENT_ID)"
        )
        self.client_id = client_id


def _client_id_taken(reason: str | None) -> bool:
    """Whether the broker's *reason* for refusing a CONNECT is that the
    client id is in use (ActiveMQ: ``Client: X already connected from ...``,
    raised as ``InvalidClientIDException``).
    """
    text = (reason or "").lower()
    return "already connected" in text or "invalidclientid" in text


def catalogue_identity(catalog_url: str) -> str:
    """Twelve hex digits that name the catalogue database of *catalog_url*:
    a digest of its backend, host, port and database (of a SQLite file, its
    absolute path). The user, the password and the driver are left out, so
    task servers of one catalogue agree as long as they spell its host, port
    and database the same way.
    """
    url = make_url(catalog_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            database = str(Path(database).expanduser().resolve())
        parts = [backend, database]
    else:
        service = url.query.get("service_name") or ""
        parts = [
            backend,
            (url.host or "").lower(),
            str(url.port or ""),
            url.database or "",
            service if isinstance(service, str) else ",".join(service),
        ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def default_client_id(catalog_url: str) -> str:
    """The DDM client id of the catalogue at *catalog_url* when the
    ``ddm_client_id`` setting is not set: ``hepcat-`` and its
    :func:`catalogue_identity`.
    """
    return f"hepcat-{catalogue_identity(catalog_url)}"


#: The stop point whose key holds the catalogue's DDM client id, and whose
#: timestamp says when it was chosen.
CLIENT_ID_POINT = "ddm.client_id"


def settle_client_id(
    Session: sessionmaker[Session],  # noqa: N803
    catalog_url: str,
    setting: str | None = None,
) -> str:
    """The DDM client id of the catalogue of *Session*: the one stored in it,
    chosen (and committed) by the first process that asks. The choice is the
    ``ddm_client_id`` *setting* when set; else :data:`LEGACY_CLIENT_ID` when
    the catalogue ingested DDM before ids were stored
    (:func:`~catalog.ddm.ingested_before`), as its subscription is there;
    else :func:`default_client_id` of *catalog_url*. A *setting* always
    wins; when it differs from the stored id, a warning says so.
    """
    try:
        return _settle_client_id(Session, catalog_url, setting)
    except IntegrityError:
        # Another process of this catalogue stored its choice first: that
        # one is the catalogue's.
        return _settle_client_id(Session, catalog_url, setting)


def _settle_client_id(
    Session: sessionmaker[Session],  # noqa: N803
    catalog_url: str,
    setting: str | None,
) -> str:
    with Session.begin() as session:
        stored = get_stop_point(CLIENT_ID_POINT, session=session).key
        if stored is None:
            stored = setting or (
                LEGACY_CLIENT_ID
                if ingested_before(session=session)
                else default_client_id(catalog_url)
            )
            set_stop_point(CLIENT_ID_POINT, utcnow(), stored, session=session)
            logger.info("This catalogue's DDM client id is now %r", stored)
    if setting and setting != stored:
        logger.warning(
            "The DDM client id is %r (setting ddm_client_id), not the %r stored "
            "in the catalogue: the broker keeps messages for %r until its "
            "subscription is removed (docs/ddm.md)",
            setting,
            stored,
            stored,
        )
    return setting or stored


@dataclass(frozen=True)
class BrokerAddress:
    """Where the STOMP broker listens, and how to log in."""

    host: str
    port: int
    login: str | None = None
    passcode: str | None = None

    def __str__(self) -> str:
        return f"stomp://{self.host}:{self.port}"


def broker_address(url: str) -> BrokerAddress:
    """Read a broker URL, ``stomp://[user:password@]host[:port]``, the way
    the ``ddm_broker`` setting is checked when the configuration loads.

    :raises ConfigError: when *url* is not such a URL.
    """
    try:
        address = STOMP_BROKER.parse(url)
    except ValueError as err:
        raise ConfigError("ddm_broker", url, str(err)) from None
    return BrokerAddress(address.host, address.port, address.username, address.password)


class Waiter(stomp.ConnectionListener):  # type: ignore[misc]
    """stomp.py callbacks that wake threads waiting for the connection, for
    a receipt, or for the connection's end. They run on stomp.py's receiver
    thread, so they only set events.
    """

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.error: str | None = None  # what the broker's ERROR frame said
        self._receipts: dict[str, threading.Event] = {}

    def expect(self, receipt: str) -> threading.Event:
        """The event set when the broker sends the receipt *receipt*."""
        return self._receipts.setdefault(receipt, threading.Event())

    def on_connected(self, frame: Any) -> None:
        self.connected.set()

    def on_receipt(self, frame: Any) -> None:
        self.expect(frame.headers.get("receipt-id", "")).set()

    def on_error(self, frame: Any) -> None:
        # ActiveMQ closes the connection after most errors; whoever waits on
        # this connection gives it up in every case.
        reason = frame.headers.get("message") or str(frame.body)[:200]
        logger.warning("STOMP broker error: %s", reason)
        self.error = f"the broker said: {reason}"
        self.lost.set()

    def on_disconnected(self) -> None:
        self.lost.set()

    def on_heartbeat_timeout(self) -> None:
        self.lost.set()

    def wait_for(self, event: threading.Event, timeout: float) -> bool:
        """Wait until *event* is set (True) or the connection is lost or
        *timeout* seconds pass (False).
        """
        deadline = time.monotonic() + timeout
        while not (event.is_set() or self.lost.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            event.wait(min(left, 0.05))
        return event.is_set() and not self.lost.is_set()


def connect(
    address: BrokerAddress,
    listener: Waiter,
    *,
    heartbeats: tuple[int, int] = (0, 0),
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Any:
    """A new STOMP 1.1 connection to *address*, once the broker has answered
    CONNECTED. stomp.py tries once; retrying is the caller's business.

    :raises ClientIdInUse: when the broker refuses because another
        connection has the ``client-id`` of *headers*.
    :raises StompException: when the broker cannot be reached, refuses, or
        does not answer within *timeout* seconds.
    """
    connection = stomp.Connection11(
        [(address.host, address.port)],
        heartbeats=heartbeats,
        reconnect_attempts_max=1,
    )
    connection.set_listener("hepcat", listener)
    try:
        connection.connect(address.login, address.passcode, headers=headers or {})
    except ConnectFailedException:
        raise ConnectFailedException(_socket_error(address)) from None
    if not listener.wait_for(listener.connected, timeout):
        disconnect(connection, listener, wait=0)
        client_id = (headers or {}).get("client-id")
        if client_id and _client_id_taken(listener.error):
            raise ClientIdInUse(address, client_id)
        raise ConnectFailedException(listener.error or f"no CONNECTED from {address}")
    return connection


def _socket_error(address: BrokerAddress) -> str:
    """Why a connection to *address* fails. stomp.py logs the socket's error
    and raises an exception without it; one plain connection finds it again.
    """
    try:
        with socket.create_connection((address.host, address.port), timeout=5.0):
            pass
    except OSError as err:
        return str(err) or type(err).__name__
    return f"the connection to {address} failed"


def disconnect(connection: Any, listener: Waiter, *, wait: float = 2.0) -> None:
    """Disconnect politely, and close the socket if the broker has not
    closed it within *wait* seconds.
    """
    try:
        if connection.is_connected() and wait > 0:
            connection.disconnect()
            listener.lost.wait(wait)
        if not listener.lost.is_set():
            connection.transport.disconnect_socket()
    except Exception as err:
        logger.debug("Closing a STOMP connection: %s", err)


def remove_subscription(
    broker_url: str, destination: str, *, client_id: str, subscription: str
) -> None:
    """Delete the durable subscription *subscription* of *client_id* to
    *destination*: the broker stops keeping messages for it. Nothing else may
    be connected as *client_id* meanwhile.

    :raises ClientIdInUse: another connection has *client_id*.
    :raises StompException: when the broker does not confirm it.
    """
    listener = Waiter()
    address = broker_address(broker_url)
    connection = connect(address, listener, headers={"client-id": client_id})
    try:
        receipt = f"hepcat-unsubscribed-{subscription}"
        connection.unsubscribe(
            id=subscription,
            headers={"activemq.subscriptionName": subscription, "receipt": receipt},
        )
        if not listener.wait_for(listener.expect(receipt), 10.0):
            raise StompException(f"{address} did not confirm removing {subscription}")
    finally:
        disconnect(connection, listener)


@dataclass(frozen=True)
class Frame:
    """A MESSAGE frame as the listener queued it."""

    message_id: str
    subscription: str
    headers: dict[str, str]
    body: str
    generation: int  # the connection it came on


class _Listener(Waiter):
    """The callbacks of one connection of the ingester."""

    def __init__(self, ingester: DdmIngester, generation: int) -> None:
        super().__init__()
        self.ingester = ingester
        self.generation = generation

    def on_message(self, frame: Any) -> None:
        self.ingester._receive(frame, self.generation, self.lost)


class DdmIngester(Task):
    """Applies the DDM events of a STOMP destination to the catalogue.

    :param broker_url: ``stomp://host:port`` (``HEPCAT_DDM_BROKER``).
    :param destination: the destination DDM publishes to
        (``HEPCAT_DDM_DESTINATION``, default ``/topic/rucio.events``).
    :param client_id: the durable subscriber's client id; one connection at
        a time may use it. With *catalog_url*, it is the ``ddm_client_id``
        setting (None: unset), and :meth:`open` settles the id with the
        catalogue (:func:`settle_client_id`).
    :param catalog_url: the catalogue's URL, for an id stored in the
        catalogue (default None: *client_id* is used as it is).
    :param subscription: the durable subscription's name: the broker keeps
        the messages published while hepcat is stopped under it.
    :param queue_size: frames held between the listener and :meth:`run`
        (default 10000); the broker's prefetch is kept well below it.
    :param quiet_seconds: a run reports a backlog until no frame has come for
        this many seconds (default 2.0), so a drain loop goes on while
        messages still flow.
    :param batch_size: frames applied per catalogue transaction (default 500).
    :param heartbeats: STOMP heart-beats (send, receive) in milliseconds
        (default 10 s both ways).
    :param patience: seconds without a subscription on the broker after which
        it counts as unreachable (default :data:`PATIENCE`, 30): the backlog is
        reported unknown rather than pending, and the supervisor keeps trying.
    :param fail_unreachable: whether a run then raises
        :class:`BrokerUnreachable` instead (default False; ``hepcat ingest
        --once`` sets it, so that it fails rather than report nothing
        ingested). A client id held by another connection is not a failure
        then: the run reports backlog 0, says so in its note and in
        :attr:`skipped`, and leaves DDM to the holder (a task server).
    """

    name = "ddm"
    priority = 8
    interval = 1.0
    budget = 1.0

    def __init__(
        self,
        broker_url: str,
        destination: str = DEFAULT_DESTINATION,
        *,
        client_id: str | None = LEGACY_CLIENT_ID,
        catalog_url: str | None = None,
        subscription: str = DEFAULT_SUBSCRIPTION,
        queue_size: int = 10000,
        quiet_seconds: float = 2.0,
        batch_size: int = 500,
        heartbeats: tuple[int, int] = (10_000, 10_000),
        patience: float | None = None,
        fail_unreachable: bool = False,
    ) -> None:
        self.address = broker_address(broker_url)
        self.destination = destination
        self.client_id = client_id
        self.catalog_url = catalog_url
        self._settled = catalog_url is None
        self.subscription = subscription
        self.quiet_seconds = quiet_seconds
        self.batch_size = max(1, batch_size)
        self.heartbeats = heartbeats
        self.patience = PATIENCE if patience is None else patience
        self.fail_unreachable = fail_unreachable
        self.prefetch = max(1, min(1000, queue_size // 2))
        self.retry_first, self.retry_max = 0.2, 10.0
        self._frames: queue.Queue[Frame] = queue.Queue(maxsize=max(2, queue_size))
        self._pending: list[Frame] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._held = threading.Event()  # the last connect: client id in use
        #: Why a ``fail_unreachable`` run left DDM to another process, if it did.
        self.skipped: str | None = None
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self._generation = 0  # the connection whose frames can be acked
        self._connections = 0
        self._last_activity = time.monotonic()
        self._unconnected_since = time.monotonic()
        self._problem = "not connected yet"  # why there is no subscription
        self._refused = False  # the last attempt: the subscription was refused

    # --- the task --------------------------------------------------------

    def open(self, Session: sessionmaker[Session] | None = None) -> None:  # noqa: N803
        """Start the supervisor thread, once the client id is settled with
        the catalogue (the catalogue is otherwise only used by runs).

        :raises ValueError: the id is to be settled, and *Session* is None.
        """
        if self._thread is not None:
            return
        if not self._settled:
            if Session is None or self.catalog_url is None:
                raise ValueError("the DDM client id is settled with the catalogue")
            self.client_id = settle_client_id(Session, self.catalog_url, self.client_id)
            self._settled = True
        self._stop.clear()
        self._unconnected_since = time.monotonic()
        self._thread = threading.Thread(
            target=self._supervise,
            name=f"hepcat-ddm-supervisor-{self.subscription}",
            daemon=True,
        )
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the supervisor and disconnect. Frames not yet applied are
        dropped here: the broker still has them, unacknowledged.
        """
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("DDM supervisor did not stop within %.0f s", timeout)
        self._pending = []
        while True:
            try:
                self._frames.get_nowait()
            except queue.Empty:
                break

    def run(self, context: RunContext) -> RunOutcome:
        """Apply the queued frames within the budget, committing and then
        acknowledging them a batch at a time.
        """
        if self._thread is None:
            self.open(context.Session)
        if not (self._subscribed.is_set() or self._pending or self._frames.qsize()):
            # Not connected (yet): wait for the subscription rather than
            # return at once and be called again in a tight loop.
            self._wait_subscribed(context)
        if self._left_to_holder():
            self.skipped = self._problem
            return RunOutcome(0, 0, f"skipped: {self._problem}")
        counts: Counter[str] = Counter()
        items = 0
        while not context.should_stop():
            frames = self._take(context)
            if not frames:
                break
            items += self._apply(frames, context.Session, counts)
        backlog = self.backlog()
        if backlog is None and not items and self.fail_unreachable:
            raise self._unreachable()
        return RunOutcome(items, backlog, self._note(counts))

    def _unreachable(self) -> BrokerUnreachable:
        """The error of a ``--once`` run without a subscription."""
        seconds = self._unconnected()
        if self._refused:
            return SubscriptionRefused(
                self.address, self.destination, seconds, self._problem
            )
        return BrokerUnreachable(self.address, seconds, self._problem)

    def _wait_subscribed(self, context: RunContext) -> None:
        """Wait for the subscription within the run's time; for ``--once``,
        not beyond the broker's answer that another connection holds the
        client id.
        """
        while not self._subscribed.is_set() and context.time_left() > 0:
            if self.fail_unreachable and self._held.is_set():
                return
            self._subscribed.wait(min(0.05, max(0.0, context.time_left())))

    def _left_to_holder(self) -> bool:
        """Whether this ``--once`` run leaves DDM to the process holding the
        client id: nothing is queued, and the broker said it is in use.
        """
        idle = not (self._subscribed.is_set() or self._pending or self._frames.qsize())
        return self.fail_unreachable and idle and self._held.is_set()

    def backlog(self) -> int | None:
        """Frames waiting; at least 1 while messages still flow (no quiet
        period yet) or the broker is briefly unreachable; None (unknown) when
        it has been unreachable for longer than ``patience``.
        """
        waiting = self._frames.qsize() + len(self._pending)
        if waiting:
            return waiting
        if not self._subscribed.is_set():
            return None if self._unconnected() > self.patience else 1
        return 1 if self._quiet_left() > 0 else 0

    def _unconnected(self) -> float:
        """Seconds since the subscription ended, or since :meth:`open`."""
        return time.monotonic() - self._unconnected_since

    @property
    def connected(self) -> bool:
        """Whether the durable subscription is active now."""
        return self._subscribed.is_set()

    def _note(self, counts: Counter[str]) -> str:
        kinds = (APPLIED, DUPLICATE, IGNORED, QUARANTINED, DROPPED)
        words = [f"{counts[kind]} {kind}" for kind in kinds if counts[kind]]
        note = ", ".join(words) or "nothing new"
        if not self._subscribed.is_set():
            note += f"; not connected to {self.address}: {self._problem}"
        return note

    def _quiet_left(self) -> float:
        return self.quiet_seconds - (time.monotonic() - self._last_activity)

    # --- taking and applying frames -------------------------------------------

    def _take(self, context: RunContext) -> list[Frame]:
        """The next batch: the frames a failed transaction left, or the
        queued ones, waiting for the first while the destination is not quiet.
        """
        if self._pending:
            frames, self._pending = self._pending, []
            return frames
        wait = min(context.time_left(), max(self._quiet_left(), 0.0))
        try:
            frames = [self._frames.get(timeout=wait) if wait > 0 else self._next()]
        except queue.Empty:
            return []
        while len(frames) < self.batch_size:
            try:
                frames.append(self._next())
            except queue.Empty:
                break
        return frames

    def _next(self) -> Frame:
        return self._frames.get_nowait()

    def _apply(
        self,
        frames: Sequence[Frame],
        Session: sessionmaker[Session],  # noqa: N803
        counts: Counter[str],
    ) -> int:
        """Apply and commit *frames*, then acknowledge them; return how many.

        After a temporary database error, the frames committed are
        acknowledged, the others kept for the next run, and the error goes up
        to the task server, which tries again with backoff.
        """
        messages = [(frame.message_id, frame.body) for frame in frames]
        try:
            statuses = commit_messages(messages, Session)
        except Interrupted as err:
            self._settle(frames, err.statuses, counts)
            raise
        return self._settle(frames, statuses, counts)

    def _settle(
        self, frames: Sequence[Frame], statuses: list[str], counts: Counter[str]
    ) -> int:
        done = len(statuses)
        counts.update(statuses)
        self._ack(frames[:done])
        self._pending = list(frames[done:])
        return done

    def _ack(self, frames: Sequence[Frame]) -> None:
        with self._lock:
            connection, generation = self._connection, self._generation
        if connection is None:
            return
        for frame in frames:
            if frame.generation != generation or "message-id" not in frame.headers:
                continue
            try:
                connection.ack(frame.headers["message-id"], frame.subscription)
            except (StompException, OSError) as err:
                # The connection dropped: the broker redelivers the rest.
                logger.info("Could not acknowledge DDM messages: %s", err)
                return
        # Acknowledgements free the broker's prefetch window, and it may now
        # send frames it held back: the destination is not quiet yet.
        self._last_activity = time.monotonic()

    # --- the listener's side ----------------------------------------------

    def _receive(self, frame: Any, generation: int, lost: threading.Event) -> None:
        """Queue *frame* (on stomp.py's receiver thread: nothing slow)."""
        headers = {str(k): str(v) for k, v in frame.headers.items()}
        body = frame.body if isinstance(frame.body, str) else str(frame.body or "")
        message_id = headers.get("message-id") or _digest(body)
        item = Frame(
            message_id, headers.get("subscription", ""), headers, body, generation
        )
        try:
            self._frames.put(item, timeout=1.0)
        except queue.Full:
            # The frame stays unacknowledged; a new connection gets it again.
            logger.warning("DDM queue full; reconnecting to have frames redelivered")
            lost.set()
            return
        self._last_activity = time.monotonic()

    # --- the supervisor --------------------------------------------------------

    def _supervise(self) -> None:
        delay = self.retry_first
        while not self._stop.is_set():
            try:
                subscribed = self._connect_and_wait()
            except Exception:
                logger.exception("DDM supervisor: unexpected error")
                subscribed = False
            delay = self.retry_first if subscribed else min(2 * delay, self.retry_max)
            self._stop.wait(delay)

    def _connect_and_wait(self) -> bool:
        """Connect, subscribe, and wait until the connection is lost or the
        ingester stops; return whether the subscription was made.
        """
        # Every connection gets a new number, even one that fails to
        # subscribe: an ACK must never reach a connection other than the
        # frame's.
        self._connections += 1
        generation = self._connections
        listener = _Listener(self, generation)
        try:
            connection = connect(
                self.address,
                listener,
                heartbeats=self.heartbeats,
                headers={"client-id": self._client_id()},
            )
        except ClientIdInUse as err:
            self._problem, self._refused = err.message, False
            self._held.set()
            logger.warning("Cannot subscribe to DDM: %s", self._problem)
            return False
        except (StompException, OSError) as err:
            self._problem, self._refused = str(err) or type(err).__name__, False
            self._held.clear()
            logger.warning(
                "Cannot connect to the DDM broker %s: %s", self.address, self._problem
            )
            return False
        self._held.clear()
        subscribed = False
        try:
            if not self._subscribe(connection, listener):
                return False
            subscribed, self._refused = True, False
            with self._lock:
                self._connection, self._generation = connection, generation
            self._last_activity = time.monotonic()
            self._subscribed.set()
            logger.info(
                "Subscribed to %s on %s as %s", self.destination, self.address, self
            )
            while not (self._stop.is_set() or listener.lost.is_set()):
                self._stop.wait(0.1)
            self._problem = listener.error or "the connection was lost"
            if not self._stop.is_set():
                logger.warning("Lost the DDM broker %s; reconnecting", self.address)
            return True
        finally:
            self._subscribed.clear()
            with self._lock:
                if self._connection is connection:
                    self._connection = None
            if subscribed:  # else the time without one goes on
                self._unconnected_since = time.monotonic()
            disconnect(connection, listener)

    def _subscribe(self, connection: Any, listener: _Listener) -> bool:
        """Subscribe to the destination, durably to a topic; return whether
        the broker confirmed it (else :attr:`_problem` says why, and
        :attr:`_refused` whether the broker refused it).
        """
        receipt = f"hepcat-subscribed-{listener.generation}"
        headers = {"activemq.prefetchSize": str(self.prefetch), "receipt": receipt}
        if self.destination.startswith(TOPIC):
            # ActiveMQ takes any other destination for a queue.
            headers["activemq.subscriptionName"] = self.subscription
        try:
            connection.subscribe(
                self.destination,
                id=self.subscription,
                ack="client-individual",
                headers=headers,
            )
        except (StompException, OSError) as err:
            self._problem = f"cannot subscribe to {self.destination}: {err}"
            self._refused = False
            logger.warning("Cannot subscribe to %s: %s", self.destination, err)
            return False
        if listener.wait_for(listener.expect(receipt), 10.0):
            return True
        self._problem = listener.error or f"no receipt for {self.destination}"
        self._refused = listener.error is not None
        logger.warning("Cannot subscribe to %s: %s", self.destination, self._problem)
        return False

    def _client_id(self) -> str:
        if self.client_id is None or not self._settled:
            raise ValueError("the DDM client id is not settled: open() first")
        return self.client_id

    def __str__(self) -> str:
        return f"client {self.client_id!r}, subscription {self.subscription!r}"


class Interrupted(Exception):
    """A temporary database error stopped :func:`commit_messages`; the
    messages before the :attr:`statuses` ran out were committed, the others
    were not. The database error is the ``__cause__``.
    """

    def __init__(self, statuses: list[str]) -> None:
        super().__init__(f"{len(statuses)} DDM message(s) committed, then stopped")
        self.statuses = statuses


def commit_messages(
    messages: Sequence[tuple[str, str]],
    Session: sessionmaker[Session],  # noqa: N803
) -> list[str]:
    """Apply (message id, body) pairs in one catalogue transaction, refresh
    the datasets they change, and commit; return what became of each.

    When the transaction fails for another reason than a temporary database
    error, the messages are applied one transaction each, and one that still
    fails goes to quarantine, so that it cannot block those behind it.

    :raises Interrupted: after a temporary database error.
    """
    try:
        with Session.begin() as session:
            return _apply(messages, session)
    except TRANSIENT as err:
        raise Interrupted([]) from err
    except Exception as err:
        logger.warning(
            "A batch of %d DDM messages failed (%s); applying them one by one",
            len(messages),
            err,
        )
    statuses: list[str] = []
    for message in messages:
        try:
            statuses.append(_commit_one(message, Session))
        except TRANSIENT as err:
            raise Interrupted(statuses) from err
    return statuses


def _commit_one(
    message: tuple[str, str],
    Session: sessionmaker[Session],  # noqa: N803
) -> str:
    message_id, body = message
    try:
        with Session.begin() as session:
            return _apply([message], session)[0]
    except TRANSIENT:
        raise
    except Exception as err:
        logger.exception("DDM message %s could not be applied", message_id)
        reason = f"could not be applied: {type(err).__name__}: {err}"
    try:
        with Session.begin() as session:
            record_unreadable(message_id, body, reason, session=session)
    except TRANSIENT:
        raise
    except Exception:
        # Kept unacknowledged, it would come back for ever.
        logger.exception("DDM message %s dropped: %r", message_id, body[:10_000])
        return DROPPED
    return QUARANTINED


def _apply(messages: Sequence[tuple[str, str]], session: Session) -> list[str]:
    applied = apply_messages(messages, session=session)
    refresh_changed(applied.datasets, session=session)
    return applied.statuses


def ingest_messages(
    messages: Sequence[tuple[str, str]],
    Session: sessionmaker[Session],  # noqa: N803
    *,
    batch_size: int = 500,
) -> list[str]:
    """Apply (message id, body) pairs as :meth:`DdmIngester.run` does, in
    transactions of *batch_size*, without a broker; return what became of
    each (``applied``, ``duplicate``, ``ignored``, ``quarantined``).

    :raises Interrupted: after a temporary database error.
    """
    statuses: list[str] = []
    for start in range(0, len(messages), batch_size):
        statuses += commit_messages(messages[start : start + batch_size], Session)
    return statuses


def _digest(body: str) -> str:
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()

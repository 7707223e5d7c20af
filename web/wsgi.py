"""The web application as a WSGI callable, for a production server::

    pip install 'hepcat[serve]'
    gunicorn --workers 4 --bind 0.0.0.0:8000 web.wsgi:app

``hepcat serve`` runs Flask's own server, which is meant for one user at a
time; a production server runs several worker processes. The settings come
from the environment (and the data directory), as for every ``hepcat``
command, and the catalogue's schema must be current (``hepcat db upgrade``):
a worker refuses to start otherwise, with the error ``hepcat serve`` gives,
in one line: so it does when the settings cannot be used or the catalogue
cannot be reached.
"""

from __future__ import annotations

import sys

import migrations
from catalog.config import load_config
from catalog.db import open_catalog
from catalog.errors import HepcatError
from hepcat.cli.base import check_reachable, error_line
from web.app import create_app, settle

try:
    config = load_config()
    engine = open_catalog(config)
    check_reachable(engine)
    migrations.require_current(engine)
except HepcatError as err:
    print(error_line(err), file=sys.stderr)  # noqa: T201 -- as the CLI renders it
    # Gunicorn takes status 3 for a worker that cannot boot, and stops rather
    # than starting workers again and again.
    sys.exit(3)
# The check's connection is not kept: a server that loads this module before
# forking its workers (gunicorn --preload) must not share it between them.
engine.dispose()
app = create_app(config, engine=engine)
settle()

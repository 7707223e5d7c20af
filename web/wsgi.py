"""The web application as a WSGI callable, for a production server::

    pip install 'hepcat[serve]'
    gunicorn --workers 4 --bind 0.0.0.0:8000 web.wsgi:app

``hepcat serve`` runs Flask's own server, which is meant for one user at a
time; a production server runs several worker processes. The settings come
from the environment (and the data directory), as for every ``hepcat``
command, and the catalogue's schema must be current (``hepcat db upgrade``):
a worker refuses to start otherwise, with the error ``hepcat serve`` gives.
"""

from __future__ import annotations

import migrations
from catalog.config import load_config
from catalog.db import open_catalog
from web.app import create_app, settle

config = load_config()
engine = open_catalog(config)
migrations.require_current(engine)
# The check's connection is not kept: a server that loads this module before
# forking its workers (gunicorn --preload) must not share it between them.
engine.dispose()
app = create_app(config, engine=engine)
settle()

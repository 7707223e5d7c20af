"""URLs as messages show them: with the password hidden.

A setting's value, an error or a log line may quote a URL the operator
typed, such as ``postgresql+psycopg://atlas:s3cret@db/ami`` or
``stomp://atlas:s3cret@mq:61613``; they show it through :func:`hide_password`,
as ``postgresql+psycopg://atlas:***@db/ami``, the form SQLAlchemy's
``URL.render_as_string(hide_password=True)`` gives.
"""

from __future__ import annotations

import re

HIDDEN = "***"

# A password passed as a query parameter, which drivers accept too
# (postgresql://db/ami?password=...).
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|passcode)=)[^&#]+", re.I)


def hide_password(text: str) -> str:
    """Return *text* with the password of the URL or address in it replaced
    by ``***``; text without a password comes back unchanged.

    The text need not be a valid URL: a setting's error quotes what the
    operator typed, right or wrong. The credentials are what comes before the
    host (after ``scheme://``, or from the start when there is no scheme): up
    to the last ``@`` before the path, so that a password holding an
    unescaped ``@`` or ``/`` is hidden whole. The password is what follows
    the first ``:`` there, after a user name without ``/``. A ``password``,
    ``passwd`` or ``passcode`` query parameter is hidden too.
    """
    return _QUERY_PASSWORD.sub(rf"\1{HIDDEN}", _hide_credentials(text))


def _hide_credentials(text: str) -> str:
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    first = rest.find("@")
    if first < 0:
        return text
    ends = [i for i in (rest.find(c, first) for c in "/?#") if i >= 0]
    at = rest.rfind("@", 0, min(ends, default=len(rest)))
    user, colon, password = rest[:at].partition(":")
    if not colon or not password or "/" in user:
        return text
    return f"{scheme}{separator}{user}:{HIDDEN}{rest[at:]}"

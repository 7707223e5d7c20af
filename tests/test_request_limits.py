"""The limits on a request's body, as a client meets them: the AMI endpoint's
500 kB holds a multipart body's file parts too, and a body sent in chunks
(no Content-Length) over ``max_upload_mb``, JSON or a form, to the API or to
a page, is the same 413 ``RequestTooLarge`` as one that says its size.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response
from worlds import make_app

from catalog.users import add_user, create_token

ZEE_EVNT = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601"
BOUNDARY = "XBOUNDARYX"


def multipart(fields: dict[str, str], blob: bytes) -> bytes:
    """A multipart body: *fields* first, as pyAMI orders them, then a file."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        f"{value}\r\n".encode()
        for name, value in fields.items()
    ]
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="blob"; '
        'filename="b.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    return b"".join(parts) + head.encode() + blob + f"\r\n--{BOUNDARY}--\r\n".encode()


def post_ami_file(app: Flask, blob: bytes) -> Any:
    body = multipart(
        {"Converter": "AMIXmlToText.xsl", "Command": "AMIListCommands"}, blob
    )
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return app.test_client().post("/AMI/FrontEnd", data=body, content_type=content_type)


def test_an_ami_request_with_a_file_over_the_limit_is_refused(app: Flask) -> None:
    big = post_ami_file(app, b"a" * 600_000)
    small = post_ami_file(app, b"a" * 1_000)

    sent = big.request.content_length
    assert big.status_code == 200 and big.mimetype == "text/plain"
    assert big.text.startswith(
        f"#AMI Result\n\nError: the command is too long: {sent:,} bytes as sent, "
        "over the AMI endpoint's limit of 500,000 bytes; send a large event "
        "collection"
    )
    assert small.status_code == 200 and "Error" not in small.text
    assert "AMICreateSkim" in small.text


@pytest.fixture
def small_app(catalog_engine: Engine, tmp_path: Path) -> Flask:
    """The application with an upload limit of 2,000 bytes."""
    return make_app(catalog_engine, tmp_path, max_upload_mb="0.002")


@pytest.fixture
def phil(Session: sessionmaker[OrmSession]) -> str:  # noqa: N803
    """The API token of a physicist."""
    with Session.begin() as session:
        add_user("phil", roles=["physicist"], session=session)
        return create_token("phil", "tests", session=session)


def post_chunked(
    app: Flask,
    path: str,
    body: bytes,
    token: str | None,
    content_type: str = "application/json",
) -> Response:
    """POST *body* sent in chunks: no Content-Length."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    environ = EnvironBuilder(
        path=path, method="POST", data=body, content_type=content_type, headers=headers
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True
    environ["wsgi.input"] = io.BytesIO(body)
    return Response.from_app(app.wsgi_app, environ)


def test_a_json_body_sent_in_chunks_over_the_limit_is_a_413(
    small_app: Flask, dataset_factory: Any, phil: str
) -> None:
    url = f"/api/v1/datasets/{dataset_factory(ZEE_EVNT).name}/annotations"
    comment = "a" * 5_000

    big = post_chunked(
        small_app, url, b'{"name": "big", "comment": "%s"}' % comment.encode(), phil
    )
    small = post_chunked(small_app, url, b'{"name": "small"}', phil)

    assert big.status_code == 413
    error = big.json["error"]
    assert error["type"] == "RequestTooLarge" and error["status"] == 413
    assert error["message"] == (
        "the request is too large: sent in chunks, it goes past the server's "
        "limit of 2,000 bytes (setting max_upload_mb); an event collection that "
        "large is better selected on the server from its TAG database"
    )
    assert small.status_code == 201 and small.json["name"] == "small"


CHUNKED_MESSAGE = (
    "the request is too large: sent in chunks, it goes past the server's "
    "limit of 2,000 bytes (setting max_upload_mb)"
)


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
def test_a_page_form_sent_in_chunks_over_the_limit_is_a_413_page(
    small_app: Flask, kind: str
) -> None:
    if kind == "urlencoded":
        form = b"login=phil&password=" + b"a" * 5_000
        content_type = "application/x-www-form-urlencoded"
    else:
        form = multipart({"login": "phil"}, b"a" * 5_000)
        content_type = f"multipart/form-data; boundary={BOUNDARY}"

    big = post_chunked(small_app, "/login", form, None, content_type)

    assert big.status_code == 413 and big.mimetype == "text/html"
    page = html.unescape(big.get_data(as_text=True))
    assert "RequestTooLarge" in page and CHUNKED_MESSAGE in page
    assert "RequestEntityTooLarge" not in page


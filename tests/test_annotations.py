"""Annotations (AMI hashtags) of datasets in the catalogue, and who may
change them through the API and the dataset page.
"""

from __future__ import annotations

import html

import pytest
from sqlalchemy.orm import Session as OrmSession
from test_access import PASSWORD, csrf_token, log_in

from catalog.annotations import (
    annotate,
    annotated_datasets,
    list_annotations,
    remove_annotation,
)
from catalog.config import load_config
from catalog.errors import DatasetNotFound, InvalidInput, NotFound, PermissionDenied
from catalog.models import Hashtag
from catalog.users import add_user, create_token, get_user
from web.app import create_app

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZEE_EVNT = f"{ZEE}.evgen.EVNT.e3601"
ZEE_AOD = f"{ZEE}.recon.AOD.e3601_s3126_r10724"
# Two physicists and an admin.
PEOPLE = {"phil": ["physicist"], "paula": ["physicist"], "ada": ["admin"]}


@pytest.fixture
def zee(dataset_factory):
    dataset_factory(ZEE_EVNT)
    dataset_factory(ZEE_AOD)
    return ZEE_EVNT


@pytest.fixture
def people(Session):  # noqa: N803
    """The people above, each with the password and an API token."""
    tokens = {}
    with Session.begin() as session:
        add_user("ada", password=PASSWORD, roles=PEOPLE["ada"], session=session)
        password_hash = get_user("ada", session=session).password_hash
        for login, roles in PEOPLE.items():
            if login != "ada":  # the same password: hashed once, for speed
                add_user(login, roles=roles, session=session)
                get_user(login, session=session).password_hash = password_hash
            tokens[login] = create_token(login, "tests", session=session)
    return tokens


@pytest.fixture
def as_user(people):
    """``as_user(login, session)``: the user *login* in *session*."""

    def user(login, session):
        return get_user(login, session=session)

    return user


@pytest.fixture
def app(catalog_engine, tmp_path):
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine)


def api_annotate(app, people, login, dataset, **body):
    return app.test_client().post(
        f"/api/v1/datasets/{dataset}/annotations",
        json=body,
        headers={"Authorization": f"Bearer {people[login]}"},
    )


def test_an_annotation_is_listed_with_its_author(Session, zee, as_user):  # noqa: N803
    with Session.begin() as session:
        phil, ada = as_user("phil", session), as_user("ada", session)
        annotate(zee, "#ZeeCandidate", comment=" clean ", user=phil, session=session)
        annotate(zee, "calib", scope="pmgl1", user=ada, session=session)
    with Session() as session:
        found = list_annotations(zee, session=session)

    shown = [(h.scope, h.name, h.comment, h.author) for h in found]
    assert shown == [
        ("PHYS", "ZeeCandidate", "clean", "phil"),
        ("PMGL1", "calib", None, "ada"),
    ]


def test_an_annotation_added_at_the_same_moment_twice_is_changed_not_a_500(
    Session, zee, as_user, monkeypatch  # noqa: N803
):
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "ZeeCandidate", comment="first", user=phil, session=session)
    # The second request looked before the first wrote: it found no tag.
    real_get = OrmSession.get
    looks = iter([None])

    def late_get(self, entity, key, **kw):
        if entity is Hashtag:
            return next(looks, real_get(self, entity, key, **kw))
        return real_get(self, entity, key, **kw)

    monkeypatch.setattr(OrmSession, "get", late_get)
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "ZeeCandidate", comment="second", user=phil, session=session)
    monkeypatch.undo()

    with Session() as session:
        found = list_annotations(zee, session=session)
    assert [(h.name, h.comment, h.author) for h in found] == [
        ("ZeeCandidate", "second", "phil")
    ]


def test_a_form_body_to_the_api_is_told_to_send_json(app, people, zee):
    answer = app.test_client().post(
        f"/api/v1/datasets/{zee}/annotations",
        data={"name": "a"},
        headers={"Authorization": f"Bearer {people['phil']}"},
    )
    broken = app.test_client().post(
        f"/api/v1/datasets/{zee}/annotations",
        data='{"name":',
        content_type="application/json",
        headers={"Authorization": f"Bearer {people['phil']}"},
    )

    assert answer.status_code == broken.status_code == 400
    told = str(answer.json["error"])
    assert "must be JSON, sent as Content-Type: application/json" in told
    assert "application/x-www-form-urlencoded" in told
    assert "is not JSON that parses" in str(broken.json["error"])


def test_annotating_again_changes_only_the_comment(Session, zee, as_user):  # noqa: N803
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "ZeeCandidate", comment="first", user=phil, session=session)
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "ZeeCandidate", comment="second", user=phil, session=session)
    with Session() as session:
        found = list_annotations(zee, session=session)

    assert [(h.name, h.comment, h.author) for h in found] == [
        ("ZeeCandidate", "second", "phil")
    ]


def test_an_admin_changes_an_annotation_that_keeps_its_author(
    Session,  # noqa: N803
    zee,
    as_user,
):
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "ZeeCandidate", comment="first", user=phil, session=session)
    with Session.begin() as session:
        ada = as_user("ada", session)
        annotate(zee, "ZeeCandidate", comment="second", user=ada, session=session)
    with Session() as session:
        found = list_annotations(zee, session=session)

    assert [(h.comment, h.author) for h in found] == [("second", "phil")]


def test_another_physicist_neither_changes_nor_removes_an_annotation(
    Session,  # noqa: N803
    zee,
    as_user,
):
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "ZeeCandidate", comment="good", user=phil, session=session)
    with Session.begin() as session:
        paula = as_user("paula", session)
        with pytest.raises(PermissionDenied) as changing:
            annotate(zee, "ZeeCandidate", comment="bad", user=paula, session=session)
        with pytest.raises(PermissionDenied) as removing:
            remove_annotation(zee, "PHYS", "ZeeCandidate", user=paula, session=session)
    with Session() as session:
        found = list_annotations(zee, session=session)

    assert "changing another physicist's annotation PHYS:ZeeCandidate (by 'phil')" in (
        str(changing.value)
    )
    assert "user 'paula'" in str(changing.value)
    assert "removing another physicist's annotation" in str(removing.value)
    assert [(h.comment, h.author) for h in found] == [("good", "phil")]


def test_datasets_are_found_by_their_tags(Session, zee, as_user):  # noqa: N803
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "Zee", user=phil, session=session)
        annotate(ZEE_AOD, "Zee", scope="PMGL1", user=phil, session=session)
    with Session() as session:
        anywhere = annotated_datasets("#Zee", session=session)
        in_phys = annotated_datasets("Zee", scope="phys", session=session)

    assert anywhere == sorted([ZEE_EVNT, ZEE_AOD])
    assert in_phys == [ZEE_EVNT]


def test_a_removed_annotation_is_gone(Session, zee, as_user):  # noqa: N803
    with Session.begin() as session:
        phil = as_user("phil", session)
        annotate(zee, "ZeeCandidate", user=phil, session=session)
        annotate(zee, "keep", user=phil, session=session)
    with Session.begin() as session:
        phil = as_user("phil", session)
        remove_annotation(zee, "phys", "ZeeCandidate", user=phil, session=session)
    with Session() as session:
        phil = as_user("phil", session)
        left = [h.name for h in list_annotations(zee, session=session)]
        with pytest.raises(NotFound, match="no annotation 'ZeeCandidate'"):
            remove_annotation(zee, "PHYS", "ZeeCandidate", user=phil, session=session)

    assert left == ["keep"]


@pytest.mark.parametrize(
    "name, scope, comment, message",
    [
        ("two words", "PHYS", None, "not a usable annotation"),
        ("", "PHYS", None, "not a usable annotation"),
        ("x" * 65, "PHYS", None, "not a usable annotation"),
        ("Zee", "PHYS'; --", None, "not a usable scope"),
        ("Zee", "PHYS", "c" * 1001, "at most 1000 characters"),
    ],
)
def test_bad_annotations_are_refused(
    Session,  # noqa: N803
    zee,
    as_user,
    name,
    scope,
    comment,
    message,
):
    with Session.begin() as session, pytest.raises(InvalidInput, match=message):
        phil = as_user("phil", session)
        annotate(zee, name, scope=scope, comment=comment, user=phil, session=session)


def test_an_unknown_dataset_is_named_with_suggestions(Session, zee, as_user):  # noqa: N803
    with Session.begin() as session, pytest.raises(DatasetNotFound) as missing:
        phil = as_user("phil", session)
        annotate(zee + "x", "Zee", user=phil, session=session)

    assert zee in str(missing.value)


# --- through the API and the dataset page -------------------------------------


def test_another_physicist_cannot_rewrite_an_annotation_through_the_api(
    app, people, zee
):
    api_annotate(app, people, "phil", zee, name="p1note", comment="good")

    rewritten = api_annotate(app, people, "paula", zee, name="p1note", comment="BAD")
    shown = app.test_client().get(f"/api/v1/datasets/{zee}/annotations")

    assert rewritten.status_code == 403
    assert rewritten.json["error"]["type"] == "PermissionDenied"
    refusal = rewritten.json["error"]["message"]
    assert "changing another physicist's annotation PHYS:p1note" in refusal
    assert [(a["author"], a["comment"]) for a in shown.json["items"]] == [
        ("phil", "good")
    ]


def test_its_author_and_an_admin_change_an_annotation_through_the_api(app, people, zee):
    api_annotate(app, people, "phil", zee, name="p1note", comment="first")

    by_phil = api_annotate(app, people, "phil", zee, name="p1note", comment="second")
    by_ada = api_annotate(app, people, "ada", zee, name="p1note", comment="third")

    assert by_phil.status_code == 201 and by_phil.json["comment"] == "second"
    assert by_ada.status_code == 201
    assert (by_ada.json["author"], by_ada.json["comment"]) == ("phil", "third")


def test_another_physicist_cannot_remove_an_annotation_through_the_api(
    app, people, zee
):
    api_annotate(app, people, "phil", zee, name="p1note")
    url = f"/api/v1/datasets/{zee}/annotations/PHYS/p1note"

    by_paula = app.test_client().delete(
        url, headers={"Authorization": f"Bearer {people['paula']}"}
    )
    by_phil = app.test_client().delete(
        url, headers={"Authorization": f"Bearer {people['phil']}"}
    )

    assert by_paula.status_code == 403
    assert (
        "removing another physicist's annotation" in by_paula.json["error"]["message"]
    )
    assert by_phil.status_code == 204


def test_another_physicist_cannot_rewrite_an_annotation_on_the_page(
    app,
    people,
    zee,
    Session,  # noqa: N803
):
    phil, paula = log_in(app, "phil"), log_in(app, "paula")
    form = {"name": "p1note", "comment": "good"}
    phil.post(
        f"/datasets/{zee}/annotations", data={**form, "csrf_token": csrf_token(phil)}
    )

    rewritten = paula.post(
        f"/datasets/{zee}/annotations",
        data={**form, "comment": "BAD", "csrf_token": csrf_token(paula)},
    )
    with Session() as session:
        found = list_annotations(zee, session=session)

    assert rewritten.status_code == 403
    assert "changing another physicist's annotation PHYS:p1note" in html.unescape(
        rewritten.text
    )
    assert [(h.author, h.comment) for h in found] == [("phil", "good")]

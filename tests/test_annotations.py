"""Annotations (AMI hashtags) of datasets in the catalogue."""

from __future__ import annotations

import pytest

from catalog.annotations import (
    annotate,
    annotated_datasets,
    list_annotations,
    remove_annotation,
)
from catalog.errors import DatasetNotFound, InvalidInput, NotFound

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZEE_EVNT = f"{ZEE}.evgen.EVNT.e3601"
ZEE_AOD = f"{ZEE}.recon.AOD.e3601_s3126_r10724"


@pytest.fixture
def zee(dataset_factory):
    dataset_factory(ZEE_EVNT)
    dataset_factory(ZEE_AOD)
    return ZEE_EVNT


def test_an_annotation_is_listed_with_its_author(Session, zee):  # noqa: N803
    with Session.begin() as session:
        annotate(
            zee, "#ZeeCandidate", comment=" clean ", author="phil", session=session
        )
        annotate(zee, "calib", scope="pmgl1", author="ada", session=session)
    with Session() as session:
        found = list_annotations(zee, session=session)

    shown = [(h.scope, h.name, h.comment, h.author) for h in found]
    assert shown == [
        ("PHYS", "ZeeCandidate", "clean", "phil"),
        ("PMGL1", "calib", None, "ada"),
    ]


def test_annotating_again_changes_only_the_comment(Session, zee):  # noqa: N803
    with Session.begin() as session:
        annotate(zee, "ZeeCandidate", comment="first", author="phil", session=session)
    with Session.begin() as session:
        annotate(zee, "ZeeCandidate", comment="second", author="ada", session=session)
    with Session() as session:
        found = list_annotations(zee, session=session)

    assert [(h.name, h.comment, h.author) for h in found] == [
        ("ZeeCandidate", "second", "phil")
    ]


def test_datasets_are_found_by_their_tags(Session, zee):  # noqa: N803
    with Session.begin() as session:
        annotate(zee, "Zee", author="phil", session=session)
        annotate(ZEE_AOD, "Zee", scope="PMGL1", author="phil", session=session)
    with Session() as session:
        anywhere = annotated_datasets("#Zee", session=session)
        in_phys = annotated_datasets("Zee", scope="phys", session=session)

    assert anywhere == sorted([ZEE_EVNT, ZEE_AOD])
    assert in_phys == [ZEE_EVNT]


def test_a_removed_annotation_is_gone(Session, zee):  # noqa: N803
    with Session.begin() as session:
        annotate(zee, "ZeeCandidate", author="phil", session=session)
        annotate(zee, "keep", author="phil", session=session)
    with Session.begin() as session:
        remove_annotation(zee, "phys", "ZeeCandidate", session=session)
    with Session() as session:
        left = [h.name for h in list_annotations(zee, session=session)]
        with pytest.raises(NotFound, match="no annotation 'ZeeCandidate'"):
            remove_annotation(zee, "PHYS", "ZeeCandidate", session=session)

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
def test_bad_annotations_are_refused(Session, zee, name, scope, comment, message):  # noqa: N803
    with Session.begin() as session, pytest.raises(InvalidInput, match=message):
        annotate(
            zee, name, scope=scope, comment=comment, author="phil", session=session
        )


def test_an_unknown_dataset_is_named_with_suggestions(Session, zee):  # noqa: N803
    with Session.begin() as session, pytest.raises(DatasetNotFound) as missing:
        annotate(zee + "x", "Zee", author="phil", session=session)

    assert zee in str(missing.value)

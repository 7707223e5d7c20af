"""Dataset names and AMI tag chains, as physicists write them."""

from __future__ import annotations

import pytest

from catalog.errors import InvalidName
from catalog.nomenclature import (
    AmiTag,
    build_dataset_name,
    build_tag_chain,
    is_valid_dataset_name,
    parse_dataset_name,
    parse_tag,
    parse_tag_chain,
)

ZEE = "PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
TTBAR = "PhPy8EG_A14_ttbar_hdamp258p75_nonallhad"
TTBAR_RUN3 = "PhPy8EG_A14_ttbar_hdamp258p75_SingleLep"

MC_NAMES = [
    f"mc15_13TeV.361106.{ZEE}.evgen.EVNT.e3601",
    f"mc15_13TeV.361106.{ZEE}.merge.DAOD_EXOT5.e3601_s2576_s2132_r7725_r7676_p2666",
    "mc15_13TeV.410000.PowhegPythiaEvtGen_P2012_ttbar_hdamp172p5_nonallhad.evgen.EVNT.e3698",
    f"mc16_13TeV.361106.{ZEE}.evgen.EVNT.e3601",
    f"mc16_13TeV.361106.{ZEE}.simul.HITS.e3601_s3126",
    f"mc16_13TeV.361106.{ZEE}.recon.AOD.e3601_s3126_r10724",
    f"mc16_13TeV.361106.{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164",
    f"mc16_13TeV.361106.{ZEE}.overlay.RDO.e3601_s3126_d1521",
    f"mc16_13TeV.361106.{ZEE}.merge.NTUP_PILEUP.e3601_s3126_r10724_p3384",
    "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.recon.ESD.e3601_s3126_r10201",
    f"mc16_13TeV.410470.{TTBAR}.digit.RDO.e6337_s3126_d1480",
    f"mc16_13TeV.410470.{TTBAR}.merge.AOD.e6337_e5984_s3126_r10724_r10726",
    f"mc16_13TeV.410470.{TTBAR}.deriv.DAOD_TOPQ1.e6337_s3126_r10724_p3629",
    "mc16_13TeV.364156.Sherpa_221_NNPDF30NNLO_Wmunu_MAXHTPTV0_70_CVetoBVeto"
    ".deriv.DAOD_SUSY5.e5340_s3126_r10724_p3990",
    "mc16_valid.422032.ParticleGun_single_mu_Pt100.simul.HITS.e6337_s3227",
    f"mc20_13TeV.410470.{TTBAR}.simul.HITS.e6337_s3681",
    f"mc20_13TeV.410470.{TTBAR}.deriv.DAOD_PHYS.e6337_s3681_r13167_r13146_p5855",
    f"mc20_13TeV.410470.{TTBAR}.deriv.DAOD_PHYSLITE.e6337_s3681_r13144_r13146_p5631",
    "mc21_13p6TeV.601189.PhPy8EG_AZNLO_Zee.evgen.EVNT.e8453",
    f"mc21_13p6TeV.601229.{TTBAR_RUN3}.deriv.DAOD_PHYS.e8453_s3873_r13829_p5278",
    f"mc23_13p6TeV.601229.{TTBAR_RUN3}.recon.AOD.e8514_s4162_r14622",
    f"mc23_13p6TeV.601229.{TTBAR_RUN3}.deriv.DAOD_PHYSLITE.e8514_s4162_r14622_p5855",
]

DATA_NAMES = [
    "data15_13TeV.00284500.physics_Main.daq.RAW",
    "data15_13TeV.00284500.physics_Main.merge.AOD.f629_m1504",
    "data15_13TeV.00284500.express_express.recon.ESD.f629",
    "data15_13TeV.00284500.physics_Main.merge.HIST.f629_h93",
    "data15_comm.00265545.physics_MinBias.merge.AOD.f581_m1423",
    "data16_13TeV.00311481.physics_Main.merge.DAOD_TOPQ1.f758_m1616_p3372",
    "data16_hip8TeV.00313063.physics_Main.merge.AOD.f781_m1741",
    "data17_13TeV.00325713.physics_Main.merge.DESDM_MCP.f838_m1824",
    "data17_cos.00324320.physics_CosmicMuons.merge.AOD.f851_m1826",
    "data18_13TeV.00348885.physics_Main.deriv.DAOD_PHYS.r11969_r11784_p4072",
    "data18_13TeV.00348885.physics_MinBias.merge.AOD.f937_m1972",
    "data18_13TeV.00364292.calibration_LArCells.daq.RAW",
    "data18_13TeV.00349263.debugrec_hlterror.daq.RAW",
    "data22_13p6TeV.00428855.physics_Main.merge.AOD.f1266_m2113",
    "data22_13p6TeV.00428855.physics_Main.deriv.DAOD_PHYS.r14859_p5855",
]

USER_NAMES = [
    "user.jdoe.skim.Zee.v1",
    "user.jdoe.mc16_13TeV.361106.Zee.DAOD_PHYS.ntuple_v3/",
    "group.phys-higgs.HZZ.ntuple.v2",
    "group.perf-muons.data18_13TeV.00348885.MCP_calib.v1",
]


@pytest.mark.parametrize("name", MC_NAMES + DATA_NAMES + USER_NAMES)
def test_a_real_name_comes_back_unchanged(name):
    parsed = parse_dataset_name(name)

    assert str(parsed) == name
    assert is_valid_dataset_name(name)


def test_an_mc_name_splits_into_its_fields():
    name = f"mc16_13TeV.361106.{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164"

    parsed = parse_dataset_name(name)

    assert parsed.kind == "mc"
    assert (parsed.project, parsed.scope) == ("mc16_13TeV", "mc16_13TeV")
    assert (parsed.energy, parsed.year) == ("13TeV", 16)
    assert parsed.dataset_number == 361106
    assert parsed.physics_short == ZEE
    assert (parsed.prod_step, parsed.data_type) == ("deriv", "DAOD_PHYS")
    assert parsed.version == "e3601_s3126_r10724_p4164"
    assert [str(tag) for tag in parsed.tags] == ["e3601", "s3126", "r10724", "p4164"]
    assert parsed.run_number is None and parsed.stream_name is None
    assert not parsed.container


def test_a_raw_dataset_has_a_run_and_a_stream_but_no_version():
    parsed = parse_dataset_name("data15_13TeV.00284500.physics_Main.daq.RAW")

    assert parsed.kind == "data"
    assert parsed.run_number == 284500
    assert parsed.stream_name == "physics_Main"
    assert (parsed.version, parsed.tags) == (None, ())
    assert (parsed.energy, parsed.year) == ("13TeV", 15)


def test_run3_and_special_projects_report_their_energy():
    energies = [
        parse_dataset_name(name).energy
        for name in (MC_NAMES[-1], DATA_NAMES[4], DATA_NAMES[6], MC_NAMES[14])
    ]

    assert energies == ["13p6TeV", "comm", "hip8TeV", "valid"]


def test_a_container_keeps_its_slash():
    name = f"mc16_13TeV.361106.{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164/"

    parsed = parse_dataset_name(name)

    assert parsed.container
    assert parsed.version == "e3601_s3126_r10724_p4164"
    assert str(parsed) == name


def test_a_group_name_has_a_rucio_scope_and_free_text():
    parsed = parse_dataset_name("group.phys-higgs.HZZ.ntuple.v2")

    assert (parsed.kind, parsed.project) == ("user", "group")
    assert parsed.scope == "group.phys-higgs"
    assert parsed.free == "HZZ.ntuple.v2"
    assert (parsed.energy, parsed.year, parsed.dataset_number) == (None, None, None)


# -- AMI tags --------------------------------------------------------------------


def test_a_tag_is_a_letter_and_a_number():
    tag = parse_tag("r10724")

    assert tag == AmiTag("r", 10724)
    assert str(tag) == "r10724"


def test_a_tag_chain_parses_and_builds_back():
    chain = "e6337_s3681_r13167_r13146_p5855"

    tags = parse_tag_chain(chain)

    assert [tag.letter for tag in tags] == ["e", "s", "r", "r", "p"]
    assert build_tag_chain(tags) == chain


def test_a_chain_builds_from_tags_strings_and_sub_chains():
    chain = build_tag_chain([AmiTag("e", 3601), "s3126", "r10724_p4164"])

    assert chain == "e3601_s3126_r10724_p4164"
    assert build_tag_chain("f629_m1504") == "f629_m1504"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("q12x", "tag 'q12x' must be a lower-case letter followed by digits"),
        ("R10724", "tag 'R10724' must be a lower-case letter followed by digits"),
        ("q12", "tag 'q12' starts with 'q', which is not an AMI tag letter"),
        ("r010724", "tag 'r010724' has a leading zero; write r10724"),
        ("", "the tag chain is empty"),
    ],
)
def test_a_wrong_tag_is_named(text, expected):
    with pytest.raises(InvalidName) as caught:
        parse_tag_chain(text)

    assert expected in str(caught.value)


def test_a_doubled_underscore_is_an_empty_tag():
    with pytest.raises(InvalidName, match="empty tag"):
        parse_tag_chain("e3601__s3126")


def test_an_empty_list_builds_no_chain():
    with pytest.raises(InvalidName, match="at least one tag"):
        build_tag_chain([])


def test_a_tag_with_an_unknown_letter_cannot_be_made():
    with pytest.raises(InvalidName, match="not an AMI tag letter"):
        AmiTag("q", 12)


# -- Malformed names ---------------------------------------------------------------

MALFORMED = [
    (
        "data15_13TeV.284500.physics_Main.daq.RAW",
        "field 2 (runNumber) '284500' must be 8 digits, e.g. '00284500'",
    ),
    (
        f"mc16_13TeV.361106.{ZEE}.recn.AOD.e3601_s3126_r10724",
        "field 4 (prodStep) 'recn' is not a known production step; expected one of "
        "evgen, simul, digit, recon, merge, deriv, daq, overlay, pileup, calib; "
        "did you mean 'recon'?",
    ),
    (
        "mc16_13TeV.361106.Zee.AOD",
        "expected 6 dot-separated fields "
        "project.datasetNumber.physicsShort.prodStep.dataType.version, got 4",
    ),
    (
        f"mc16_13TeV.361106.{ZEE}.recon.AOD.e3601_q12x",
        "field 6 (version) 'e3601_q12x': tag 'q12x' must be a lower-case letter "
        "followed by digits",
    ),
    (
        f"mc16_13TeV.361106.{ZEE}.recon.AOD.e3601_y3126",
        "field 6 (version) 'e3601_y3126': tag 'y3126' starts with 'y', "
        "which is not an AMI tag letter",
    ),
    (
        f"mc16_13TeV.36110.{ZEE}.evgen.EVNT.e3601",
        "field 2 (datasetNumber) '36110' must be 6 digits",
    ),
    (
        f"mc16_13tev.361106.{ZEE}.evgen.EVNT.e3601",
        "field 1 (project) 'mc16_13tev' must be mc<NN>_<energy>, e.g. 'mc16_13TeV'",
    ),
    (
        f"mx16_13TeV.361106.{ZEE}.evgen.EVNT.e3601",
        "field 1 (project) 'mx16_13TeV' must be mc<NN>_<energy>, data<NN>_<energy>",
    ),
    (
        "mc16_13TeV.361106..evgen.EVNT.e3601",
        "field 3 (physicsShort) is empty",
    ),
    (
        "data15_13TeV.00284500.Main.daq.RAW",
        "field 3 (streamName) 'Main' must be <type>_<name>, e.g. 'physics_Main'",
    ),
    (
        "data15_13TeV.00284500.physics_Main.merge.aod.f629_m1504",
        "field 5 (dataType) 'aod' must be upper-case letters, digits and '_' "
        "starting with a letter, e.g. 'DAOD_PHYS'; did you mean 'AOD'?",
    ),
    (
        "data15_13TeV.00284500.physics_Main.merge.AOD",
        "got 5; only RAW datasets have no version",
    ),
    (
        "data15_13TeV.00284500.physics_Main.daq.RAW.f629",
        "field 6 (version) 'f629' must be absent for RAW data",
    ),
    (
        "data15_13TeV.00284500.physics_Main.merge.AOD.f629_m1504.v2",
        "expected 6 dot-separated fields "
        "project.runNumber.streamName.prodStep.dataType.version (5 for RAW), got 7",
    ),
    (
        "user.jdoe",
        "expected at least 3 dot-separated fields user.<login>.<free text>, got 2",
    ),
    (
        "user.jdoe.skim..v1",
        "field 4 (free text) is empty",
    ),
    (
        "group.Phys_Higgs.HZZ.v2",
        "field 2 (group) 'Phys_Higgs' must be lower-case letters",
    ),
    (
        "user.jdoe.skim+Zee",
        "field 3 (free text) 'skim+Zee' must be letters, digits, '_' and '-'",
    ),
    (
        f"mc16_13TeV:mc16_13TeV.361106.{ZEE}.evgen.EVNT.e3601",
        "':' separates a Rucio scope from a name; give the name alone",
    ),
]


@pytest.mark.parametrize(("name", "reason"), MALFORMED)
def test_a_malformed_name_says_which_part_is_wrong(name, reason):
    with pytest.raises(InvalidName) as caught:
        parse_dataset_name(name)

    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{name!r} is not a valid name: ")
    assert not is_valid_dataset_name(name)


def test_an_invalid_name_is_a_bad_request():
    with pytest.raises(ValueError) as caught:
        parse_dataset_name("data15_13TeV.284500.physics_Main.daq.RAW")

    assert isinstance(caught.value, InvalidName)
    assert caught.value.status == 400
    assert caught.value.name == "data15_13TeV.284500.physics_Main.daq.RAW"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "the name is empty"),
        ("   ", "the name is blank"),
        (
            f"mc16_13TeV.361106 .{ZEE}.evgen.EVNT.e3601",
            "character 18 is whitespace; names have none",
        ),
        ("user.jdoe." + "x" * 250, "the name has 260 characters, more than 255"),
    ],
)
def test_an_empty_blank_or_long_name_is_refused(name, reason):
    with pytest.raises(InvalidName) as caught:
        parse_dataset_name(name)

    assert caught.value.reason == reason


def test_something_other_than_a_string_is_refused():
    with pytest.raises(InvalidName) as caught:
        parse_dataset_name(None)  # type: ignore[arg-type]

    assert caught.value.reason == "expected a str, got NoneType"
    assert not is_valid_dataset_name(361106)


# -- Building names ----------------------------------------------------------------


def test_an_mc_name_is_built_from_its_parts():
    name = build_dataset_name(
        project="mc16_13TeV",
        dataset_number=361106,
        physics_short=ZEE,
        prod_step="deriv",
        data_type="DAOD_PHYS",
        tags=["e3601", "s3126", AmiTag("r", 10724), AmiTag("p", 4164)],
    )

    assert name == f"mc16_13TeV.361106.{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164"


def test_a_raw_name_is_built_without_tags_and_with_a_padded_run():
    name = build_dataset_name(
        project="data15_13TeV",
        run_number=284500,
        stream_name="physics_Main",
        prod_step="daq",
        data_type="RAW",
    )

    assert name == "data15_13TeV.00284500.physics_Main.daq.RAW"


def test_a_user_container_is_built_with_its_slash():
    name = build_dataset_name(scope="user.jdoe", free="skim.Zee.v1", container=True)

    assert name == "user.jdoe.skim.Zee.v1/"


@pytest.mark.parametrize("name", MC_NAMES + DATA_NAMES + USER_NAMES)
def test_building_from_parsed_parts_gives_the_name_back(name):
    parsed = parse_dataset_name(name)

    rebuilt = build_dataset_name(**_build_arguments(parsed))

    assert rebuilt == name
    assert parse_dataset_name(rebuilt) == parsed


def _build_arguments(parsed):
    if parsed.kind == "user":
        parts = {"scope": parsed.scope, "free": parsed.free}
    elif parsed.kind == "mc":
        parts = {"dataset_number": parsed.dataset_number}
        parts["physics_short"] = parsed.physics_short
    else:
        parts = {"run_number": parsed.run_number, "stream_name": parsed.stream_name}
    if parsed.kind != "user":
        parts.update(project=parsed.project, prod_step=parsed.prod_step)
        parts.update(data_type=parsed.data_type, tags=parsed.tags)
    return {**parts, "container": parsed.container}


def test_the_tags_can_be_given_as_the_version_text():
    name = build_dataset_name(
        project="mc20_13TeV",
        dataset_number=410470,
        physics_short=TTBAR,
        prod_step="simul",
        data_type="HITS",
        version="e6337_s3681",
    )

    assert name == f"mc20_13TeV.410470.{TTBAR}.simul.HITS.e6337_s3681"


def test_a_built_name_is_checked_and_the_wrong_part_named():
    with pytest.raises(InvalidName) as caught:
        build_dataset_name(
            project="data15_13TeV",
            run_number=284500,
            stream_name="physics_Main",
            prod_step="reco",
            data_type="AOD",
            tags="f629_m1504",
        )

    assert "field 4 (prodStep) 'reco'" in caught.value.reason
    assert "did you mean 'recon'?" in caught.value.reason


def test_a_build_mixing_mc_and_data_arguments_is_refused():
    with pytest.raises(TypeError, match="stream_name not used in an MC name"):
        build_dataset_name(  # type: ignore[call-overload]
            project="mc16_13TeV",
            dataset_number=361106,
            physics_short=ZEE,
            stream_name="physics_Main",
            prod_step="evgen",
            data_type="EVNT",
            tags=["e3601"],
        )


def test_a_build_missing_a_part_says_which():
    with pytest.raises(
        TypeError, match=r"an MC name needs physics_short, tags \(or version\)"
    ):
        build_dataset_name(  # type: ignore[call-overload]
            project="mc16_13TeV",
            dataset_number=361106,
            prod_step="evgen",
            data_type="EVNT",
        )

"""MQL: the parser's tree, the compiler's resolution of AMI names, and
properties that must hold for any text a client sends: only InvalidInput as
an error, no SQL in a message, values never read as SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyAMI.config
import pyAMI_atlas  # noqa: F401 - fills pyAMI.config.tables
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from test_ami import post, search

import migrations
from catalog.config import load_config
from catalog.datasets import add_dataset
from catalog.db import create_catalog_engine, session_factory
from catalog.errors import InvalidInput
from catalog.mql import (
    BoolOp,
    Comparison,
    FieldRef,
    InList,
    IsNull,
    Like,
    Literal,
    Not,
    compile_search,
    parse,
)
from catalog.mql.compiler import like_matches
from web.app import create_app

PYAMI_QUERY = (
    "SELECT dataset.logicalDatasetName AS ldn, dataset.totalEvents AS events "
    "WHERE (dataset.logicalDatasetName like 'mc16_13TeV.%DAOD_PHYS%') AND "
    "((dataset.dataType = 'DAOD_PHYS') AND (dataset.amiStatus = 'VALID')) "
    "ORDER BY dataset.totalEvents LIMIT 0,10"
)

# What SQL in a message would look like: statements, our table and column
# names, placeholders.
SQL_MARKERS = re.compile(
    r"SELECT\s.*\sFROM|\bdataset\.id\b|\bfile\.dataset_id\b|\bami_status\b"
    r"|\btotal_events\b|%\(\w+\)s|:param_\d|\blower\(|ILIKE|ESCAPE",
    re.IGNORECASE | re.DOTALL,
)


# --- the tree -----------------------------------------------------------------


def test_a_query_of_the_real_client_parses_into_its_tree() -> None:
    query = parse(PYAMI_QUERY)

    assert [(str(s.field), s.alias) for s in query.fields] == [
        ("dataset.logicalDatasetName", "ldn"),
        ("dataset.totalEvents", "events"),
    ]
    assert isinstance(query.where, BoolOp) and query.where.op == "AND"
    like, inner = query.where.conditions
    assert isinstance(like, Like) and like.pattern.value == "mc16_13TeV.%DAOD_PHYS%"
    assert isinstance(inner, BoolOp)
    assert [c.right.value for c in inner.conditions] == ["DAOD_PHYS", "VALID"]  # type: ignore[union-attr]
    assert [(str(o.field), o.descending) for o in query.order] == [
        ("dataset.totalEvents", False)
    ]
    assert (query.offset, query.limit) == (0, 10)


def test_and_binds_tighter_than_or_and_not_applies_to_what_follows() -> None:
    where = parse("SELECT a WHERE NOT a = 1 OR b <> 2 AND c >= 3").where

    assert isinstance(where, BoolOp) and where.op == "OR"
    negated, conjunction = where.conditions
    assert isinstance(negated, Not) and isinstance(negated.condition, Comparison)
    assert isinstance(conjunction, BoolOp) and conjunction.op == "AND"
    assert [c.op for c in conjunction.conditions] == ["!=", ">="]  # type: ignore[union-attr]


def test_every_kind_of_predicate_and_literal() -> None:
    where = parse(
        "SELECT a WHERE a NOT LIKE 'x%' AND b IN ('it''s', 2, -3.5) "
        "AND c IS NOT NULL AND d IS NULL AND (1 = 1)"
    ).where

    assert isinstance(where, BoolOp)
    like, members, not_null, null, constant = where.conditions
    assert isinstance(like, Like) and like.negated
    assert isinstance(members, InList)
    assert [v.value for v in members.values] == ["it's", 2, -3.5]
    assert isinstance(not_null, IsNull) and not_null.negated
    assert isinstance(null, IsNull) and not null.negated
    assert constant == Comparison("=", Literal(1, 97), Literal(1, 101))


@pytest.mark.parametrize(
    ("limit", "window"),
    [("LIMIT 5,10", (5, 10)), ("LIMIT 7", (0, 7)), ("LIMIT 10 OFFSET 3", (3, 10))],
)
def test_limit_forms(limit: str, window: tuple[int, int]) -> None:
    query = parse(f"SELECT a ORDER BY a DESC, files.LFN {limit}")

    assert (query.offset, query.limit) == window
    assert query.order[0].descending and not query.order[1].descending
    assert query.order[1].field == FieldRef("files", "LFN", 27)


@pytest.mark.parametrize(
    ("mql", "message"),
    [
        ("", "expected SELECT at position 1, found the end of the query"),
        (
            "SELECT a WHERE",
            "expected a field, a number or a quoted string at position 15",
        ),
        ("SELECT a WHERE a = 'oops", "unterminated string at position 20"),
        (
            "SELECT a WHERE a == 1",
            "expected a field, a number or a quoted string at position 19",
        ),
        ("SELECT a WHERE a LIKE b", "expected a quoted pattern at position 23"),
        ("SELECT a WHERE (a = 1", "expected ')' at position 22"),
        ("SELECT a LIMIT 1.5", "expected a whole number at position 16"),
        ("SELECT a; DROP TABLE dataset", "unexpected character ';' at position 9"),
        ("SELECT a -- comment", "unexpected character '-' at position 10"),
        ("SELECT a FROM dataset", "expected WHERE, ORDER BY, LIMIT or the end"),
        ("SELECT a WHERE a IN ()", "expected a field, a number or a quoted string"),
        (
            "SELECT a WHERE totalEvents > " + "9" * 5000,
            "the number at position 30 is longer than 100 characters",
        ),
        ("SELECT a WHERE a = 2\u00b2", "unexpected character '\u00b2' at position 21"),
        ("SELECT a WHERE a = \u0663", "unexpected character '\u0663' at position 20"),
        (
            "SELECT a LIMIT " + "9" * 20,
            "LIMIT needs numbers from 0 to 9223372036854775807",
        ),
        ("SELECT a LIMIT 1 OFFSET -1", "LIMIT needs numbers from 0 to"),
    ],
)
def test_a_malformed_query_names_the_problem_and_its_position(
    mql: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse(mql)

    assert message in raised.value.message


def test_a_query_of_more_than_a_thousand_conditions_is_refused() -> None:
    ors = " OR ".join(f"nFiles = {number}" for number in range(1001))
    mql = f"SELECT a WHERE {ors}"

    with pytest.raises(InvalidInput) as raised:
        parse(mql)

    assert raised.value.message == (
        "the query has more than 1000 conditions (each value of an IN list "
        "counts as one); the condition at position "
        f"{mql.index('nFiles = 1000') + 1} is past that"
    )


def test_an_in_list_counts_one_condition_per_value() -> None:
    values = ", ".join(str(number) for number in range(1000))

    assert parse(f"SELECT a WHERE a IN ({values})").where is not None
    with pytest.raises(InvalidInput, match="more than 1000 conditions"):
        parse(f"SELECT a WHERE a IN ({values}) AND b = 1")


def test_deep_nesting_is_refused_instead_of_exhausting_the_stack() -> None:
    with pytest.raises(InvalidInput, match="nests deeper"):
        parse("SELECT a WHERE " + "(" * 100 + "a = 1" + ")" * 100)
    with pytest.raises(InvalidInput, match="nests deeper"):
        parse("SELECT a WHERE " + "NOT " * 100 + "a = 1")


# --- the compiler ---------------------------------------------------------------


def test_unknown_field_is_named_with_its_position_and_near_names() -> None:
    with pytest.raises(InvalidInput) as raised:
        compile_search("dataset", "SELECT dataset.totalEvent WHERE nFiles > 1")

    assert raised.value.message.startswith(
        "unknown field 'totalEvent' of entity dataset at position 8; "
        "did you mean totalEvents"
    )


def test_unknown_entity_and_unknown_qualifier_name_what_exists() -> None:
    with pytest.raises(InvalidInput, match="unknown entity 'datasets'; the entities"):
        compile_search("datasets", "SELECT logicalDatasetName")
    with pytest.raises(InvalidInput, match="may name dataset, files, dataset_keywords"):
        compile_search("dataset", "SELECT runs.runNumber")


def test_a_value_that_does_not_fit_its_field_is_named() -> None:
    with pytest.raises(InvalidInput) as raised:
        compile_search("dataset", "SELECT nFiles AS x WHERE runNumber = 'abc'")

    assert "runNumber must be an integer, got 'abc' (at position 38)" in (
        raised.value.message
    )


def test_values_are_bound_parameters_never_sql_text() -> None:
    search = compile_search(
        "dataset",
        "SELECT logicalDatasetName WHERE physicsComment = 'x'' OR ''1''=''1' "
        "AND physicsShort LIKE '%/* */%' AND runNumber IN (1, 2)",
    )

    sql = str(search.statement.compile())
    assert "OR '1'='1" not in sql and "/*" not in sql
    values = search.statement.compile().params.values()
    assert "x' OR '1'='1" in values


ALIASED = [
    "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.evgen.EVNT.e3601",
    "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.evgen.EVNT.e3601",
]


@pytest.fixture
def ami_client(
    catalog_engine: Engine,
    Session: sessionmaker,  # noqa: N803
    tmp_path: Path,
) -> FlaskClient:
    """The AMI endpoint of a catalogue of the datasets :data:`ALIASED`."""
    with Session.begin() as session:
        for name in ALIASED:
            add_dataset(name, "prodsys", session=session)
    config = load_config(env={}, data_dir=str(tmp_path))
    return create_app(config, engine=catalog_engine).test_client()


def test_an_alias_is_named_in_any_letter_case(ami_client: FlaskClient) -> None:
    mql = "SELECT logicalDatasetName AS ldn ORDER BY LDN DESC"

    found = search(ami_client, "dataset", mql)

    assert [row["ldn"] for row in found] == sorted(ALIASED, reverse=True)


def test_an_unknown_name_in_order_by_suggests_the_aliases_too(
    ami_client: FlaskClient,
) -> None:
    command = (
        'SearchQuery -entity="dataset" '
        '-mql="SELECT logicalDatasetName AS ldn ORDER BY ldm"'
    )

    answer = post(ami_client, command)

    assert (
        "unknown field or alias 'ldm' of entity dataset at position 43; "
        "did you mean ldn?" in answer
    )


def pyami_fields() -> Iterator[tuple[str, str, str]]:
    """Every (pyAMI table, entity, AMI field) that pyAMI_atlas can send."""
    tables = pyAMI.config.tables
    for table, fields in sorted(tables.items()):
        for short, described in sorted(fields.items()):
            if not short.startswith("@"):
                yield table, fields["@entity"], described.split("=")[0]


@pytest.mark.parametrize(("table", "entity", "name"), list(pyami_fields()))
def test_every_short_name_of_pyami_atlas_is_answerable(
    table: str, entity: str, name: str
) -> None:
    search = compile_search(entity, f"SELECT {entity}.{name} AS x ORDER BY x")

    assert search.names == ("x",)


@pytest.mark.parametrize("foreign", ["files", "keywords", "hashtags"])
def test_every_foreign_field_of_datasets_is_answerable(foreign: str) -> None:
    fields = pyAMI.config.tables[foreign]
    entity = fields["@entity"]
    names = [v.split("=")[0] for k, v in fields.items() if not k.startswith("@")]
    selected = ", ".join(f"{entity}.{name}" for name in names)

    search = compile_search("dataset", f"SELECT dataset.logicalDatasetName, {selected}")

    assert search.tables == ("dataset", *[entity] * len(names))


def test_trashed_datasets_are_hidden_unless_asked_for() -> None:
    def conditions(mql: str, **options: bool) -> str:
        statement = compile_search("dataset", mql, **options).statement
        return str(statement.whereclause)

    assert "dataset.ami_status" in conditions("SELECT logicalDatasetName")
    assert "dataset.ami_status" not in conditions(
        "SELECT logicalDatasetName", show_archived=True
    )
    trashed = conditions("SELECT logicalDatasetName WHERE amiStatus = 'TRASHED'")
    assert trashed.count("dataset.ami_status") == 1


# --- properties, on a small catalogue ---------------------------------------------

COMMENTS = ["Zee", "zee sample", "50% done", "a_b", "back\\slash", "it's", "/* c */"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A SQLite catalogue with one dataset per comment of COMMENTS."""
    path: Path = tmp_path_factory.mktemp("mql") / "catalog.sqlite"
    engine = create_catalog_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    with session_factory(engine).begin() as session:
        for number, comment in enumerate(COMMENTS):
            name = f"mc16_13TeV.{100000 + number}.Sample.evgen.EVNT.e{number + 1}"
            add_dataset(name, "prodsys", session=session, physics_comment=comment)
    yield engine
    engine.dispose()


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def comments_found(Session: sessionmaker, condition: str) -> list[str]:  # noqa: N803
    search = compile_search("dataset", f"SELECT physicsComment WHERE {condition}")
    with Session() as session:
        return sorted(row[0] for row in session.execute(search.statement))


def like_oracle(pattern: str, text: str) -> bool:
    """LIKE as MQL defines it: % any run, _ one character, ASCII case ignored."""
    regex = "".join(
        ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL) is not None


def test_like_matches_as_the_oracle_says(catalog: Engine) -> None:
    Session = session_factory(catalog)  # noqa: N806

    assert comments_found(Session, "physicsComment LIKE 'ZEE%'") == [
        "Zee",
        "zee sample",
    ]
    assert comments_found(Session, "physicsComment LIKE '%\\%'") == ["back\\slash"]
    assert comments_found(Session, "physicsComment LIKE '%!%%'") == []
    assert comments_found(Session, "physicsComment LIKE '_0%'") == ["50% done"]
    assert comments_found(Session, "physicsComment LIKE 'back\\slash'") == [
        "back\\slash"
    ]
    assert comments_found(Session, "physicsComment = 'zee'") == []


ASCII = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    value=st.text(
        alphabet=st.characters(
            blacklist_categories=["Cs"], blacklist_characters="\x00"
        ),
        max_size=20,
    )
)
def test_a_value_only_ever_matches_as_literal_text(catalog: Engine, value: str) -> None:
    Session = session_factory(catalog)  # noqa: N806

    found = comments_found(Session, f"physicsComment = {quoted(value)}")

    assert found == [c for c in sorted(COMMENTS) if c == value]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pattern=ASCII)
def test_a_like_pattern_only_ever_matches_as_a_pattern(
    catalog: Engine, pattern: str
) -> None:
    Session = session_factory(catalog)  # noqa: N806

    found = comments_found(Session, f"physicsComment LIKE {quoted(pattern)}")

    assert found == [c for c in sorted(COMMENTS) if like_oracle(pattern, c)]


def test_a_like_between_literals_with_many_wildcards_is_decided_at_once(
    catalog: Engine,
) -> None:
    # With a regular expression of the whole pattern each "%a" multiplied
    # the work by about four: 12 groups took several minutes (8.6 s at 9),
    # so the old code sits here for that long; 30 would take years.
    Session = session_factory(catalog)  # noqa: N806
    text = quoted("a" * 40)

    never = comments_found(Session, f"{text} LIKE '{'%a' * 12}%b'")
    always = comments_found(Session, f"{text} LIKE '{'%a' * 12}%'")

    assert never == []
    assert always == sorted(COMMENTS)


@pytest.mark.parametrize(
    ("text", "pattern", "matches"),
    [
        ("a" * 40, "%a" * 30 + "%b", False),
        ("a" * 40, "%a" * 30 + "%", True),
        ("a" * 40, "%a" * 41 + "%", False),
        ("a" * 20_000, "%" + "a" * 6_000 + "b%", False),
        ("Zee sample", "z_E%PLE", True),
        ("back\\slash", "back\\s%", True),
        ("50% done", "5_\\%", False),
        ("a\nb", "a_b", True),
        ("", "%", True),
        ("", "_", False),
    ],
)
def test_like_between_literals_matches_as_the_database_does(
    text: str, pattern: str, matches: bool
) -> None:
    assert like_matches(text, pattern) is matches


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(alphabet="aAb%_\\.*", max_size=8), text=ASCII)
def test_like_between_literals_agrees_with_the_oracle(pattern: str, text: str) -> None:
    assert like_matches(text, pattern) is like_oracle(pattern, text)


def test_a_thousand_conditions_run_on_sqlite_whose_sql_nests_shallowly(
    catalog: Engine,
) -> None:
    # A chain of 1000 ORs is an expression 1000 levels deep, which SQLite
    # refuses; the compiler joins them in blocks.
    Session = session_factory(catalog)  # noqa: N806
    periods = ", ".join(f"'P{number}'" for number in range(999))
    ors = " OR ".join(f"nFiles = {number}" for number in range(1, 1000))

    by_period = comments_found(
        Session, f"period IN ({periods}) OR physicsComment = 'Zee'"
    )
    by_files = comments_found(Session, f"{ors} OR physicsComment = 'Zee'")

    assert by_period == ["Zee"]
    assert by_files == ["Zee"]


FIELDS = [
    "logicalDatasetName",
    "dataset.nFiles",
    "files.LFN",
    "period",
    "totalEvents",
    "amiStatus",
    "created",
    "ddmOpen",
    "bogus",
    "files.bogus",
    "x.y",
    "inContainer",
]
WORDS = [
    "SELECT",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "LIKE",
    "IN",
    "IS",
    "NULL",
    "ORDER",
    "BY",
    "DESC",
    "LIMIT",
    "AS",
    "(",
    ")",
    ",",
    "=",
    "!=",
    "<>",
    "<",
    ">=",
    "*",
    "'A%'",
    "'x'' OR ''1''=''1'",
    "'--'",
    "'/* */'",
    "1",
    "-2",
    "3.5",
    "0,10",
    "'2015-07-03 10:00:00'",
    "'true'",
    ";",
    "--",
    "/*",
    "'",
    ".",
    '"x"',
]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    words=st.lists(st.sampled_from(FIELDS + WORDS), max_size=14),
    entity=st.sampled_from(["dataset", "files", "HASHTAGS", "projects"]),
)
def test_any_query_compiles_and_runs_or_is_refused_with_a_clean_message(
    catalog: Engine, words: list[str], entity: str
) -> None:
    mql = " ".join(["SELECT", *words]) if words[:1] != ["SELECT"] else " ".join(words)
    try:
        search = compile_search(entity, mql)
    except InvalidInput as err:
        assert not SQL_MARKERS.search(err.message), err.message
        return
    with session_factory(catalog)() as session:
        session.execute(search.statement).all()


@settings(max_examples=100, deadline=None)
@given(mql=st.text(max_size=60))
def test_arbitrary_text_is_a_query_or_an_invalid_input(mql: str) -> None:
    try:
        compile_search("dataset", mql)
    except InvalidInput as err:
        assert not SQL_MARKERS.search(err.message), err.message


# --- name patterns and the projects they imply ----------------------------------

NAMES = [
    "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.deriv.DAOD_PHYS.e3601_p4164",
    "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.recon.AOD.e3601_r10724",
    "mc20_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.deriv.DAOD_PHYS.e3601_p5001",
    "mc23_13p6TeV.601189.PhPy8EG_AZNLO_Zee.deriv.DAOD_PHYSLITE.e8514_p5855",
    "data16_13TeV.00284500.physics_Main.merge.AOD.f629_m1504",
    "data15_13TeV.00276262.physics_Main.deriv.DAOD_PHYS.r9264_p4164",
    "data15_13TeV.00276262.physics_Main.daq.RAW",
    "user.jdoe.test1",
    "user.jdoe2.mc16_13TeV.Zee.v1",
    "user.mc16.private",
    "group.phys-higgs.mc16_13TeV.skim_v2",
]
# Patterns where a project condition is easy to get wrong: '_' is any one
# character (a dot too), '%' spans dots, letter case is ignored, user and
# group names have a scope of two fields, and some patterns have no literal
# start at all.
TRICKY_PATTERNS = [
    "mc16_13TeV.%",
    "MC16_13TEV.%DAOD_PHYS%",
    "mc16_13tev.3611__.%",
    "mc1__13TeV.%",
    "mc16%Zee%",
    "mc%.%DAOD_PHYS.%",
    "m%13TeV.%",
    "_c16_13TeV.%",
    "data1_%",
    "data15_13TeV.00276262.physics_Main.daq.RAW",
    "data15_13TeV.00276262.physics_Main.daq.RAW_",
    "data15_13TeV",
    "data15_13TeV.",
    "user.%",
    "USER.JDOE.%",
    "user_jdoe%",
    "user.jdoe_%",
    "user_mc16%",
    "u%.mc16%",
    "group.phys-higgs.%",
    "g_oup%",
    "%Zee%",
    "_%",
    "%",
    "x%",
    "",
]


def names_found(Session: sessionmaker, mql: str, *, narrowed: bool) -> list[str]:  # noqa: N803
    with Session() as session:
        search = compile_search("dataset", mql, session=session if narrowed else None)
        return [row[0] for row in session.execute(search.statement)]


def names_like(pattern: str) -> str:
    return (
        "SELECT logicalDatasetName WHERE logicalDatasetName LIKE "
        f"{quoted(pattern)} ORDER BY logicalDatasetName"
    )


def test_the_project_condition_never_changes_what_a_name_pattern_finds(
    Session: sessionmaker,  # noqa: N803
) -> None:
    with Session.begin() as session:
        for name in NAMES:
            add_dataset(name, "prodsys", session=session)

    for pattern in TRICKY_PATTERNS:
        narrowed = names_found(Session, names_like(pattern), narrowed=True)

        expected = sorted(name for name in NAMES if like_oracle(pattern, name))
        assert narrowed == expected, pattern
        assert narrowed == names_found(Session, names_like(pattern), narrowed=False)


def test_conditions_combine_as_the_patterns_do(Session: sessionmaker) -> None:  # noqa: N803
    with Session.begin() as session:
        for name in NAMES:
            add_dataset(name, "prodsys", session=session)
    conditions = {
        "logicalDatasetName LIKE 'mc16%' OR logicalDatasetName LIKE 'data16%'": [
            NAMES[0],
            NAMES[1],
            NAMES[4],
        ],
        "logicalDatasetName LIKE 'mc16%' OR dataType = 'RAW'": NAMES[:2] + [NAMES[6]],
        "logicalDatasetName LIKE 'user.%' AND NOT logicalDatasetName LIKE 'user.j%'": [
            NAMES[9]
        ],
        "logicalDatasetName LIKE 'mc%' AND logicalDatasetName LIKE '%.361106.%'": [
            NAMES[0],
            NAMES[2],
        ],
        "NOT logicalDatasetName LIKE 'mc%' AND logicalDatasetName LIKE '%Zee%'": [
            NAMES[8],
        ],
    }

    for condition, expected in conditions.items():
        mql = f"SELECT logicalDatasetName WHERE {condition} ORDER BY logicalDatasetName"
        assert names_found(Session, mql, narrowed=True) == sorted(expected), condition


def test_a_pattern_with_a_literal_start_is_written_with_its_projects(
    Session: sessionmaker,  # noqa: N803
) -> None:
    with Session.begin() as session:
        for name in NAMES:
            add_dataset(name, "prodsys", session=session)

    def conditions(pattern: str) -> tuple[object, bool]:
        """The project_name values of the compiled query ("none" for a
        condition that is always false), and whether it still tests the name.
        """
        with Session() as session:
            search = compile_search("dataset", names_like(pattern), session=session)
        where = str(search.statement.whereclause)
        params = search.statement.compile().params
        projects = [v for k, v in params.items() if k.startswith("project_name")]
        if "false" in where:
            projects = ["none"]
        return (projects or None), "dataset.name" in where

    assert conditions("mc16_13TeV.%") == (["mc16_13TeV"], False)
    assert conditions("MC___13TEV.%") == ([["mc16_13TeV", "mc20_13TeV"]], False)
    assert conditions("user_jdoe%") == ([["user.jdoe", "user.jdoe2"]], False)
    assert conditions("mc16_13TeV.%Zee%") == (["mc16_13TeV"], True)
    assert conditions("user.jdoe.t%") == (["user.jdoe"], True)
    assert conditions("user_jdoe__%") == (
        [["user.jdoe", "user.jdoe2"], "user.jdoe2"],
        True,
    )
    assert conditions("data15_13TeV") == (["none"], False)
    assert conditions("x%") == (["none"], False)
    assert conditions("%Zee%") == (None, True)


def test_past_too_many_projects_no_condition_is_added(
    Session: sessionmaker,  # noqa: N803
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from catalog.mql import narrowing

    with Session.begin() as session:
        for name in NAMES:
            add_dataset(name, "prodsys", session=session)
    monkeypatch.setattr(narrowing, "MAX_PROJECTS", 2)

    with Session() as session:
        search = compile_search("dataset", names_like("mc%"), session=session)
        found = [row[0] for row in session.execute(search.statement)]

    assert "project_name" not in str(search.statement.whereclause)
    assert found == sorted(NAMES[:4])


@pytest.mark.parametrize(
    ("project", "pattern", "could", "every"),
    [
        ("mc16_13TeV", "MC16_13TEV.%", True, True),
        ("mc16_13TeV", "mc1%", True, True),
        ("mc16", "mc16_13TeV.%", True, False),  # '_' may be the dot
        ("user.jdoe", "user_jdoe%", True, True),
        ("mc16_13TeV", "mc16_13TeV.%Zee%", True, False),
        ("mc16_13TeV", "mc16_13TeV._%", True, False),
        ("mc16_13TeV", "mc16_13TeV", False, False),  # no '%': too short
        ("data15_13TeV", "mc%", False, False),
        ("mc16_13TeV", "\u212ac16%", True, False),  # KELVIN SIGN folds to k
    ],
)
def test_which_projects_a_pattern_reaches(
    project: str, pattern: str, could: bool, every: bool
) -> None:
    from catalog.mql.narrowing import could_start, starts_every

    assert could_start(project, pattern) is could
    assert starts_every(project, pattern) is every


def test_every_name_starts_with_its_project_and_a_dot() -> None:
    from catalog.nomenclature import name_columns

    for name in NAMES:
        assert name.startswith(name_columns(name)["project_name"] + ".")
        assert name_columns(name)["project_name"].isascii()


@pytest.fixture(scope="module")
def named_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A SQLite catalogue with the datasets of NAMES."""
    path: Path = tmp_path_factory.mktemp("mql") / "names.sqlite"
    engine = create_catalog_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    with session_factory(engine).begin() as session:
        for name in NAMES:
            add_dataset(name, "prodsys", session=session)
    yield engine
    engine.dispose()


PATTERN_PARTS = ["mc", "MC", "16", "1", "_", "_", "%", ".", "13TeV", "data"]
PATTERN_PARTS += ["user", "USER", "jdoe", "group", "Zee", "x", "-", "phys"]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=st.lists(st.sampled_from(PATTERN_PARTS), max_size=8))
def test_any_name_pattern_finds_what_the_oracle_says_with_the_project_condition(
    named_catalog: Engine, parts: list[str]
) -> None:
    pattern = "".join(parts)

    found = names_found(
        session_factory(named_catalog), names_like(pattern), narrowed=True
    )

    assert found == sorted(name for name in NAMES if like_oracle(pattern, name))

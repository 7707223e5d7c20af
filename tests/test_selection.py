"""The selection language: what it reads, what it says about mistakes, and
that numpy and the three databases select the same events as an independent
numpy computation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, select

from catalog.db import Base
from catalog.models import TagDatabase, TagEvent
from skimengine.selection import (
    Compare,
    Logical,
    Not,
    SelectionError,
    Vocabulary,
    compile_selection,
    parse,
)
from skimengine.tags import SCHEMA, TagTable, insert_events, sql_columns

TRIGGERS = ("HLT_e26_lhtight", "HLT_mu26_ivarmedium", "HLT_xe110", "HLT_j420")
VOCABULARY = Vocabulary({a.name: a.kind for a in SCHEMA}, TRIGGERS)


def random_tag(n: int, seed: int) -> dict[str, np.ndarray]:
    """TAG columns of *n* made-up events, with zeros, ties and negative
    trigger masks (bit 63 set) among them.
    """
    rng = np.random.default_rng(seed)
    columns = {
        "RunNumber": rng.choice([284500, 300000, 310000], n).astype(np.int32),
        "EventNumber": rng.integers(1, 10**12, n),
        "LumiBlock": rng.integers(1, 200, n).astype(np.int32),
        "nJets": rng.poisson(2.5, n).astype(np.int32),
        "nElectrons": rng.poisson(0.6, n).astype(np.int32),
        "nMuons": rng.poisson(0.6, n).astype(np.int32),
        "jet_pt1": np.round(rng.exponential(60, n), 1).astype(np.float32),
        "jet_pt2": np.round(rng.exponential(30, n), 1).astype(np.float32),
        "el_pt1": np.where(rng.random(n) < 0.4, 0, rng.exponential(30, n)),
        "mu_pt1": np.where(rng.random(n) < 0.4, 0, rng.exponential(30, n)),
        "MET": rng.exponential(40, n).astype(np.float32),
        "triggerBits": rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64),
        "FileIndex": np.zeros(n, np.int32),
        "Entry": np.arange(n),
    }
    for name in ("el_pt1", "mu_pt1"):
        columns[name] = columns[name].astype(np.float32)
    return columns


DATA = random_tag(2000, seed=7)
N = len(DATA["Entry"])


def bits(column: np.ndarray, bit: int) -> np.ndarray:
    return ((column.view(np.uint64) >> np.uint64(bit)) & np.uint64(1)) == 1


def f64(name: str) -> np.ndarray:
    return DATA[name].astype(np.float64)


# Each expression with the mask an independent numpy computation gives.
CASES = {
    "nJets >= 2 && MET > 30": lambda d: (d["nJets"] >= 2) & (d["MET"] > 30),
    "nJets >= 2 and MET > 30.5 or nMuons == 1": lambda d: (
        ((d["nJets"] >= 2) & (f64("MET") > 30.5)) | (d["nMuons"] == 1)
    ),
    "not nElectrons > 0 || !(MET < 20)": lambda d: (
        ~(d["nElectrons"] > 0) | ~(d["MET"] < 20)
    ),
    "20 < jet_pt1 < 50.3": lambda d: (f64("jet_pt1") > 20) & (f64("jet_pt1") < 50.3),
    "jet_pt1 in [20, 50)": lambda d: (d["jet_pt1"] >= 20) & (d["jet_pt1"] < 50),
    "MET IN (10.1, 60.7]": lambda d: (f64("MET") > 10.1) & (f64("MET") <= 60.7),
    "abs(jet_pt1 - jet_pt2) < 15.25": lambda d: (
        np.abs(f64("jet_pt1") - f64("jet_pt2")) < 15.25
    ),
    "jet_pt1 + 2 * jet_pt2 - MET / 4 >= 100": lambda d: (
        f64("jet_pt1") + 2 * f64("jet_pt2") - f64("MET") / 4 >= 100
    ),
    "-MET > -25.5": lambda d: -f64("MET") > -25.5,
    "jet_pt1 == 0 or jet_pt1 == 59.7": lambda d: (
        (d["jet_pt1"] == 0) | (f64("jet_pt1") == 59.7)
    ),
    "el_pt1 != 0.1": lambda d: f64("el_pt1") != 0.1,
    "MET / nJets > 20": lambda d: _quotient(f64("MET"), f64("nJets")) > 20,
    "not (MET / nJets > 20)": lambda d: ~(_quotient(f64("MET"), f64("nJets")) > 20),
    "MET / nJets != 20": lambda d: _defined_ne(_quotient(f64("MET"), f64("nJets")), 20),
    "bit(triggerBits, 0) && bit(triggerBits, 63)": lambda d: (
        bits(d["triggerBits"], 0) & bits(d["triggerBits"], 63)
    ),
    'trigger("HLT_xe110") || !trigger("HLT_j420")': lambda d: (
        bits(d["triggerBits"], 2) | ~bits(d["triggerBits"], 3)
    ),
    "bit(nJets, 1)": lambda d: bits(d["nJets"].astype(np.int64), 1),
    "EventNumber > 500000000000 and RunNumber != 300000": lambda d: (
        (d["EventNumber"] > 500_000_000_000) & (d["RunNumber"] != 300000)
    ),
    "LumiBlock * 2 <= 100 and 1e2 > nJets": lambda d: (
        (d["LumiBlock"] * 2 <= 100) & (100 > d["nJets"])
    ),
    "nJets > nMuons + nElectrons": lambda d: d["nJets"] > d["nMuons"] + d["nElectrons"],
    "1 < 2": lambda d: np.ones(N, bool),
    "MET > 9999999999999999999999": lambda d: np.zeros(N, bool),
}


def _quotient(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full(len(a), np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _defined_ne(a: np.ndarray, b: float) -> np.ndarray:
    return ~np.isnan(a) & (a != b)


# -- reading ------------------------------------------------------------------


def test_and_binds_tighter_than_or_and_not_applies_to_a_comparison():
    tree = parse("a > 1 or b > 2 and not c > 3")

    assert isinstance(tree, Logical) and tree.op == "||"
    assert isinstance(tree.operands[1], Logical) and tree.operands[1].op == "&&"
    assert isinstance(tree.operands[1].operands[1], Not)


def test_words_and_symbols_read_the_same():
    assert parse("a > 1 AND NOT b < 2 Or c == 3") == parse("a > 1 && !b < 2 || c == 3")


def test_a_chained_comparison_and_an_interval_are_two_comparisons():
    spelled = [
        "20 < jet_pt1 <= 50",
        "jet_pt1 in (20, 50]",
        "jet_pt1 > 20 && 50 >= jet_pt1",
    ]

    masks = [compile_selection(e, VOCABULARY).numpy(DATA, N) for e in spelled]

    chain = parse(spelled[0])
    assert isinstance(chain, Logical) and chain.op == "&&"
    assert [c.op for c in chain.operands if isinstance(c, Compare)] == ["<", "<="]
    assert 0 < masks[0].sum() < N
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])


@pytest.mark.parametrize("expression", sorted(CASES))
def test_numpy_selects_what_an_independent_computation_selects(expression):
    selection = compile_selection(expression, VOCABULARY)

    mask = selection.numpy({k: DATA[k] for k in selection.attributes}, N)

    expected = CASES[expression](DATA)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_every_case_selects_some_events_and_not_all():
    # The comparisons above mean something only if they split the data.
    fractions = [CASES[e](DATA).mean() for e in CASES if e not in ("1 < 2",)]
    assert sum(0 < fraction < 1 for fraction in fractions) >= len(CASES) - 3


# -- mistakes -----------------------------------------------------------------


def error(expression: str) -> SelectionError:
    with pytest.raises(SelectionError) as caught:
        compile_selection(expression, VOCABULARY)
    return caught.value


def test_an_unknown_attribute_is_pointed_at_and_the_near_names_suggested():
    err = error("nJets >= 2 && jetpt1 > 20")

    assert err.status == 400
    assert err.position == 14
    assert "unknown attribute 'jetpt1'" in str(err)
    assert "did you mean 'jet_pt1'" in str(err)
    assert str(err).splitlines()[1:] == [
        "  nJets >= 2 && jetpt1 > 20",
        "                ^^^^^^",
    ]


def test_a_misspelt_trigger_suggests_the_menu_entry():
    err = error('trigger("HLT_mu26_ivarmedum")')

    assert "unknown trigger 'HLT_mu26_ivarmedum'" in str(err)
    assert err.suggestions == ["HLT_mu26_ivarmedium"]


def test_case_differences_are_suggested_too():
    assert error("met > 20").suggestions == ["MET"]


@pytest.mark.parametrize(
    ("expression", "position", "words"),
    [
        ("MET >", 5, "found the end"),
        ("MET = 20", 4, "use '=='"),
        ("MET > 20 & nJets > 1", 9, "use '&&'"),
        ("MET > 20 nJets > 1", 9, "join conditions with 'and'"),
        ("MET + 20", 0, "did you forget a comparison?"),
        ("(MET > 20) + 1 > 2", 1, "a condition has no numeric value"),
        ("sqrt(MET) > 3", 0, "unknown function 'sqrt'"),
        ("abs(MET, 2) > 3", 0, "abs() takes 1 argument, not 2"),
        ("bit(MET, 3)", 4, "needs an integer attribute"),
        ("bit(triggerBits, 64)", 17, "from 0 to 63"),
        ("bit(triggerBits, 1.5)", 17, "whole number"),
        ("trigger(HLT_j420)", 8, "quoted trigger name"),
        ('MET > "20"', 6, "expected an attribute, a number"),
        ("MET > 20)", 8, "after a complete selection"),
        ("(MET > 20", 9, "')' to close the '(' at column 1"),
        ("MET in [1 2]", 10, "','"),
        ("MET in 1, 2", 7, "an interval"),
        ("MET > 1e999", 6, "too large"),
        ("nJets > " + "9" * 5000, 8, "at most 100 characters"),
        ("nJets > \u0663", 8, "no meaning"),  # ARABIC-INDIC DIGIT THREE
        ("nJets > 2\u00b2", 9, "no meaning"),  # SUPERSCRIPT TWO
        ('trigger("HLT_j420', 8, "end with a quote"),
        ("MET > 20 # comment", 9, "no meaning"),
        ("   ", 0, "empty"),
        ("(" * 30 + "MET > 1" + ")" * 30, 24, "nested"),
        ("+".join(["MET"] * 70) + " > 1", 0, "nested"),
    ],
)
def test_a_mistake_is_explained_at_its_position(expression, position, words):
    err = error(expression)

    assert err.position == position
    assert words in str(err)
    assert str(err).splitlines()[2].index("^") == position + 2


def test_a_selection_too_long_is_refused_without_a_position():
    expression = " and ".join(["MET > 1"] * 1000)  # 11,995 characters

    err = error(expression)

    assert str(err) == (
        "the selection has 11995 characters; a selection has at most 10000"
    )
    assert err.errors == [str(err)] and err.position is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9223372036854775807", 2**63 - 1),
        ("0000000000000000000000042", 42),
        ("9223372036854775808", 9223372036854775808.0),
        ("9" * 100, float("9" * 100)),
    ],
)
def test_a_whole_number_is_exact_up_to_64_bits_then_a_double(text, value):
    tree = parse(f"nJets > {text}")

    assert isinstance(tree, Compare)
    assert tree.right.value == value
    assert type(tree.right.value) is type(value)


@pytest.mark.parametrize(
    ("expression", "summary", "caret"),
    [
        (
            "MET > 20 AND and nJets > 1",
            "column 14: expected an attribute, a number or '(' but found 'and'",
            "               ^^^",
        ),
        (
            "MET > 20 Not nJets > 1",
            "column 10: unexpected 'Not' after a complete selection; "
            "join conditions with 'and' or 'or'",
            "           ^^^",
        ),
        (
            "MET > or 3",
            "column 7: expected an attribute, a number or '(' but found 'or'",
            "        ^^",
        ),
        (
            "MET in [1 AND 2]",
            "column 11: expected ',' between the ends of the interval but found 'AND'",
            "            ^^^",
        ),
        (
            "MET in [1, 2 AND nJets > 1",
            "column 14: expected ']' or ')' to end the interval but found 'AND'",
            "               ^^^",
        ),
        (
            "(MET > 1 OR nJets > 2 NOT",
            "column 23: expected ')' to close the '(' at column 1 but found 'NOT'",
            "                        ^^^",
        ),
        (
            "MET > 20 || || nJets > 1",
            "column 13: expected an attribute, a number or '(' but found '||'",
            "              ^^",
        ),
    ],
)
def test_a_mistake_quotes_the_keyword_as_it_was_typed(expression, summary, caret):
    err = error(expression)

    assert str(err).splitlines() == [summary, f"  {expression}", caret]
    assert err.errors == [summary]


def test_a_selection_with_trigger_names_needs_a_menu():
    with pytest.raises(SelectionError, match="no trigger menu"):
        compile_selection('trigger("HLT_j420")', Vocabulary({"triggerBits": "int"}))


# -- SQL on the three databases --------------------------------------------------


@pytest.fixture
def random_tag_rows(Session, dataset_factory):  # noqa: N803
    """DATA as the rows of a registered TAG in ``tag_event``."""
    dataset = dataset_factory("mc16_13TeV.361106.Zee.recon.AOD.e3601_s3126_r10724")
    table = TagTable((_ref(),), DATA, TRIGGERS)
    with Session.begin() as session:
        tag = TagDatabase(dataset_id=dataset.id, store="sql", location="-")
        session.add(tag)
        session.flush()
        insert_events(tag.id, table, session=session)
        return tag.id


def _ref():
    from skimengine.collection import FileRef

    return FileRef("5a1d3f3e-0000-4000-8000-000000000001", "AOD.01._000001.pool.root")


def selected_rows(session: Any, selection: Any, tag_id: int) -> list[int]:
    """The rows of TAG *tag_id* that *selection*, compiled to SQL, selects."""
    query = (
        select(TagEvent.seq)
        .where(TagEvent.tag_database_id == tag_id)
        .where(selection.sql(sql_columns()))
        .order_by(TagEvent.seq)
    )
    return list(session.scalars(query))


def test_the_database_selects_what_numpy_selects(Session, random_tag_rows):  # noqa: N803
    with Session() as session:
        for expression, independent in CASES.items():
            selection = compile_selection(expression, VOCABULARY)
            rows = selected_rows(session, selection, random_tag_rows)

            expected = np.flatnonzero(independent(DATA)).tolist()
            assert rows == expected, expression


def test_nothing_from_the_expression_is_pasted_into_the_sql(Session, random_tag_rows):  # noqa: N803
    selection = compile_selection(
        'MET > 123.25 and trigger("HLT_mu26_ivarmedium") or nJets == 7', VOCABULARY
    )
    condition = selection.sql(sql_columns())

    with Session() as session:
        sql = str(condition.compile(session.get_bind()))

    assert "123.25" not in sql and "7" not in sql and "HLT" not in sql


@pytest.mark.parametrize(
    "attack",
    [
        "MET > 1; DROP TABLE tag_event",
        "MET > 1 -- ",
        "MET > 1' OR '1'='1",
        'trigger("x\') OR 1=1 --")',
        "tag_event.met > 1",
        "MET > 1 union select 1",
    ],
)
def test_an_injection_attempt_is_a_selection_error(attack):
    with pytest.raises(SelectionError):
        compile_selection(attack, VOCABULARY)


# -- random expressions ---------------------------------------------------------

NAMES = sorted(VOCABULARY.attributes) + ["nJet", "met", "x"]


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(10**6), 10**6).map(str),
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.6g}"),
        st.sampled_from(["0", "0.0", "1e3", ".5", "9999999999999999999999", "1e999"]),
    )


def values() -> st.SearchStrategy[str]:
    leaf = st.one_of(numbers(), st.sampled_from(NAMES))
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(
                " ".join
            ),
            inner.map(lambda x: f"abs({x})"),
            inner.map(lambda x: f"-{x}"),
            inner.map(lambda x: f"({x})"),
        ),
        max_leaves=6,
    )


def conditions() -> st.SearchStrategy[str]:
    comparison = st.tuples(
        values(),
        st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "=", "in"]),
        values(),
    ).map(" ".join)
    special = st.one_of(
        st.tuples(values(), values(), values()).map(
            lambda t: f"{t[0]} in [{t[1]}, {t[2]})"
        ),
        st.integers(-2, 66).map(lambda b: f"bit(triggerBits, {b})"),
        st.sampled_from([*TRIGGERS, "HLT_nope"]).map(lambda t: f'trigger("{t}")'),
    )
    return st.recursive(
        st.one_of(comparison, special),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or", "&&", "||"]), inner).map(
                " ".join
            ),
            inner.map(lambda x: f"not {x}"),
            inner.map(lambda x: f"!({x})"),
        ),
        max_leaves=5,
    )


SMALL = random_tag(64, seed=11)
SQLITE = create_engine("sqlite://")
Base.metadata.create_all(SQLITE, tables=[TagEvent.__table__])
with SQLITE.begin() as _connection:
    _rows = [
        {a.column: SMALL[a.name][i].item() for a in SCHEMA}
        | {"tag_database_id": 1, "seq": i, "file_guid": "g", "entry": i}
        for i in range(64)
    ]
    _connection.execute(insert(TagEvent), _rows)


def run_everywhere(expression: str) -> None:
    """Compile and run *expression* on numpy and on SQLite; they agree."""
    selection = compile_selection(expression, VOCABULARY)
    mask = selection.numpy(SMALL, 64)
    query = select(TagEvent.seq).where(selection.sql(sql_columns())).order_by("seq")
    with SQLITE.connect() as connection:
        rows = list(connection.scalars(query))
    assert rows == np.flatnonzero(mask).tolist(), expression


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions())
def test_a_random_expression_runs_alike_or_is_a_selection_error(expression):
    try:
        run_everywhere(expression)
    except SelectionError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("MET nJs<>=!&|()[],.0123456789-+*/\"'abcdinotr_")
        ),
        max_size=40,
    )
)
def test_random_text_is_read_or_refused_with_a_selection_error(expression):
    try:
        run_everywhere(expression)
    except SelectionError as err:
        assert err.expression == expression
        assert 0 <= err.position <= len(expression)

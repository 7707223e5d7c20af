"""Names of ATLAS datasets and chains of AMI tags: parse, check and build them.

A Monte Carlo dataset is called
``project.datasetNumber.physicsShort.prodStep.dataType.version``::

    mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164

a real-data dataset ``project.runNumber.streamName.prodStep.dataType.version``,
where a RAW dataset has no version::

    data15_13TeV.00284500.physics_Main.daq.RAW
    data15_13TeV.00284500.physics_Main.merge.AOD.f629_m1504

and a user or group dataset ``user.<login>.<free text>`` or
``group.<group>.<free text>``. A trailing ``/`` marks a DDM container. The
version is a chain of AMI tags, each a letter and a number, joined by ``_``.

Every check raises :class:`~catalog.errors.InvalidName` with a reason that names
the wrong field by its position and its name and says what was expected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from catalog.errors import InvalidName

__all__ = [
    "MAX_NAME_LENGTH",
    "PROD_STEPS",
    "TAG_LETTERS",
    "AmiTag",
    "DatasetName",
    "build_dataset_name",
    "build_tag_chain",
    "is_valid_dataset_name",
    "name_columns",
    "parse_dataset_name",
    "parse_tag",
    "parse_tag_chain",
]

#: The production steps a dataset name may carry in its fourth field.
PROD_STEPS = (
    "evgen",
    "simul",
    "digit",
    "recon",
    "merge",
    "deriv",
    "daq",
    "overlay",
    "pileup",
    "calib",
)
#: The letters that start an AMI tag (``h`` is the histogram-merging tag of HIST).
TAG_LETTERS = tuple("esadrfmptxhckbgouz")
#: The longest name DDM accepts.
MAX_NAME_LENGTH = 255

_MC_LAYOUT = "project.datasetNumber.physicsShort.prodStep.dataType.version"
_DATA_LAYOUT = "project.runNumber.streamName.prodStep.dataType.version"
# An energy such as 13TeV, 13p6TeV, hip8TeV or 900GeV, or a word such as comm.
_ENERGY = r"(?:[a-z]*[0-9]+(?:p[0-9]+)?(?:TeV|GeV)|[a-z][a-z0-9]*)"
_TAG = re.compile(r"([a-z])([0-9]+)")
# A part of a version that has the form of a tag (:func:`tags_in_version`).
_TAG_PART = re.compile(r"(?<![^_])[a-z][0-9]+(?![^_])")
_T = TypeVar("_T")


class _Problem(Exception):
    """A part of a name is wrong; the public functions report it as InvalidName."""


@dataclass(frozen=True)
class _Field:
    """One field of a name: where it is, and what it must look like."""

    label: str
    pattern: re.Pattern[str]
    expected: str

    def check(self, value: str) -> str:
        if not value:
            raise _Problem(f"{self.label} is empty; it must be {self.expected}")
        if self.pattern.fullmatch(value) is None:
            raise _Problem(f"{self.label} {value!r} must be {self.expected}")
        return value


# [0-9] rather than \d: int() would accept other scripts' digits and the name
# would not come back the same from str().
_MC_PROJECT = _Field(
    "field 1 (project)",
    re.compile(rf"mc[0-9]{{2}}_{_ENERGY}"),
    "mc<NN>_<energy>, e.g. 'mc16_13TeV' or 'mc23_13p6TeV'",
)
_DATA_PROJECT = _Field(
    "field 1 (project)",
    re.compile(rf"data[0-9]{{2}}_{_ENERGY}"),
    "data<NN>_<energy>, e.g. 'data15_13TeV' or 'data22_13p6TeV'",
)
_DATASET_NUMBER = _Field(
    "field 2 (datasetNumber)",
    re.compile(r"[0-9]{6}|[1-9][0-9]{6}"),
    "6 digits (or 7 not starting with 0), e.g. '361106'",
)
_RUN_NUMBER = _Field(
    "field 2 (runNumber)", re.compile(r"[0-9]{8}"), "8 digits, e.g. '00284500'"
)
_PHYSICS_SHORT = _Field(
    "field 3 (physicsShort)",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"),
    "letters, digits, '_' and '-', e.g. 'PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee'",
)
_STREAM_NAME = _Field(
    "field 3 (streamName)",
    re.compile(r"[a-z]+_[A-Za-z0-9_]+"),
    "<type>_<name>, e.g. 'physics_Main' or 'express_express'",
)
_DATA_TYPE = _Field(
    "field 5 (dataType)",
    re.compile(r"[A-Z][A-Z0-9_]*|log"),
    "upper-case letters, digits and '_' starting with a letter, e.g. 'DAOD_PHYS'",
)
_OWNERS = {
    "user": _Field(
        "field 2 (login)",
        re.compile(r"[a-z0-9][a-z0-9_-]*"),
        "lower-case letters, digits, '_' and '-', e.g. 'jdoe'",
    ),
    "group": _Field(
        "field 2 (group)",
        re.compile(r"[a-z0-9][a-z0-9_-]*"),
        "lower-case letters, digits, '_' and '-', e.g. 'phys-higgs'",
    ),
}
_FREE_PART = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class AmiTag:
    """One AMI configuration tag, such as ``r10724``: a letter and a number."""

    letter: str
    number: int

    def __post_init__(self) -> None:
        if self.letter not in TAG_LETTERS:
            raise InvalidName(str(self), _letter_problem(self.letter))
        if isinstance(self.number, bool) or not isinstance(self.number, int):
            raise InvalidName(str(self), "an AMI tag number is an int")
        if self.number < 0:
            raise InvalidName(str(self), "an AMI tag number is an int, 0 or more")

    def __str__(self) -> str:
        return f"{self.letter}{self.number}"


@dataclass(frozen=True)
class DatasetName:
    """The parts of a dataset name. ``str()`` gives the name back unchanged.

    *kind* is ``"mc"``, ``"data"`` or ``"user"`` (user and group scopes). For
    MC and real data, *project* and *scope* are the first field; for user and
    group names, *project* is ``"user"`` or ``"group"`` and *scope* the Rucio
    scope, such as ``"user.jdoe"``. *version* is the tag chain as written,
    ``None`` for RAW; *tags* the same chain parsed.
    """

    kind: str
    project: str
    scope: str
    dataset_number: int | None = None
    run_number: int | None = None
    physics_short: str | None = None
    stream_name: str | None = None
    prod_step: str | None = None
    data_type: str | None = None
    version: str | None = None
    tags: tuple[AmiTag, ...] = ()
    container: bool = False
    free: str | None = None

    @property
    def energy(self) -> str | None:
        """What follows the ``_`` of the project: ``"13TeV"``, ``"13p6TeV"``,
        ``"comm"``; ``None`` for user and group names.
        """
        return None if self.kind == "user" else self.project.partition("_")[2]

    @property
    def year(self) -> int | None:
        """The two digits of the project: the data-taking year for real data,
        the campaign for MC (``mc16`` → 16); ``None`` for user and group names.
        """
        if self.kind == "user":
            return None
        return int(self.project.removeprefix(self.kind)[:2])

    def __str__(self) -> str:
        return ".".join(self._fields()) + ("/" if self.container else "")

    def _fields(self) -> list[str]:
        if self.kind == "user":
            return [self.scope, self.free or ""]
        if self.kind == "mc":
            head = [self.project, f"{self.dataset_number:06d}", self.physics_short]
        else:
            head = [self.project, f"{self.run_number:08d}", self.stream_name]
        fields = [*head, self.prod_step, self.data_type, self.version]
        return [field for field in fields if field is not None]


# -- AMI tags -----------------------------------------------------------------


def parse_tag(text: str) -> AmiTag:
    """Parse one AMI tag, such as ``"r10724"``.

    :raises InvalidName: when *text* is not a known letter followed by digits.
    """
    return _reporting(_tag, text)


def parse_tag_chain(text: str) -> tuple[AmiTag, ...]:
    """Parse a chain of AMI tags joined by ``_``, such as ``"e3601_s3126_r10724"``.

    :raises InvalidName: naming the first tag that is wrong.
    """
    return _reporting(_tag_chain, text)


def tags_in_version(version: str | None) -> list[str]:
    """The AMI tags in the version *version* of a dataset name, each once,
    in order: the parts between ``_`` that are tags (``e3601_s3126_tid0123_00``
    holds ``e3601`` and ``s3126``); none for no version. Called for every
    dataset catalogued, so one regular expression reads the whole version.
    """
    found = _TAG_PART.findall(version or "")
    return list(dict.fromkeys(tag for tag in found if tag[0] in TAG_LETTERS))


def build_tag_chain(tags: Iterable[AmiTag | str]) -> str:
    """Join *tags* into a chain such as ``"e3601_s3126"``. A string item may
    itself be a chain; a string instead of an iterable is taken as one chain.

    :raises InvalidName: for a tag that is wrong, or when there is none.
    """
    chain = _flat_tags(tags)
    if not chain:
        raise InvalidName("", "a tag chain needs at least one tag")
    return "_".join(map(str, chain))


def _flat_tags(tags: Iterable[AmiTag | str]) -> tuple[AmiTag, ...]:
    if isinstance(tags, str):
        return parse_tag_chain(tags)
    flat: list[AmiTag] = []
    for tag in tags:
        if isinstance(tag, AmiTag):
            flat.append(tag)
        elif isinstance(tag, str):
            flat.extend(parse_tag_chain(tag))
        else:
            raise InvalidName(repr(tag), "expected an AmiTag or a str")
    return tuple(flat)


def _tag(text: str) -> AmiTag:
    match = _TAG.fullmatch(text)
    if match is None:
        raise _Problem(
            f"tag {text!r} must be a lower-case letter followed by digits, "
            "e.g. 'r10724'"
        )
    letter, digits = match.groups()
    if letter not in TAG_LETTERS:
        raise _Problem(f"tag {text!r} starts with {_letter_problem(letter)}")
    if len(digits) > 1 and digits.startswith("0"):
        raise _Problem(f"tag {text!r} has a leading zero; write {letter}{int(digits)}")
    return AmiTag(letter, int(digits))


def _letter_problem(letter: str) -> str:
    known = ", ".join(TAG_LETTERS)
    return f"{letter!r}, which is not an AMI tag letter; expected one of {known}"


def _tag_chain(text: str) -> tuple[AmiTag, ...]:
    if not text:
        raise _Problem("the tag chain is empty; expected tags such as 'e3601_s3126'")
    parts = text.split("_")
    if "" in parts:
        raise _Problem("the tag chain has an empty tag: a '_' at an end or doubled")
    return tuple(_tag(part) for part in parts)


# -- Dataset names --------------------------------------------------------------


def parse_dataset_name(name: str) -> DatasetName:
    """Split *name* into its parts, checking each against the nomenclature.

    :raises InvalidName: naming the first wrong field and what it should be.
    """
    return _reporting(_dataset_name, name)


def name_columns(name: str) -> dict[str, Any]:
    """The dataset columns that its name determines (nomenclature).

    :raises InvalidName: when *name* does not follow the nomenclature.
    """
    parsed = parse_dataset_name(name)
    return {
        "name": name,
        "scope": parsed.scope,
        "project_name": parsed.project if parsed.kind != "user" else parsed.scope,
        "dataset_number": parsed.dataset_number,
        "run_number": parsed.run_number,
        "physics_short": parsed.physics_short,
        "stream_name": parsed.stream_name,
        "production_step": parsed.prod_step,
        "data_type": parsed.data_type,
        "version": parsed.version,
    }


def is_plain_name(value: str) -> bool:
    """Whether *value* can name a file in a directory, as a Rucio name does:
    not empty, no ``/``, not ``.`` nor ``..`` (which would lead elsewhere).
    """
    return bool(value) and "/" not in value and value not in (".", "..")


def is_valid_dataset_name(name: object) -> bool:
    """Whether *name* is a str that follows the nomenclature."""
    try:
        parse_dataset_name(name)  # type: ignore[arg-type]
    except InvalidName:
        return False
    return True


def _reporting(parse: Callable[[str], _T], text: str) -> _T:
    """Run *parse* on *text*, reporting a problem as InvalidName."""
    try:
        if not isinstance(text, str):
            raise _Problem(f"expected a str, got {type(text).__name__}")
        return parse(text)
    except _Problem as problem:
        shown = text if isinstance(text, str) else repr(text)
        raise InvalidName(shown, str(problem)) from None


def _dataset_name(name: str) -> DatasetName:
    _check_characters(name)
    fields = name.removesuffix("/").split(".")
    parse = _PARSERS[_kind_of(fields[0])]
    return parse(fields, name.endswith("/"))


def _check_characters(name: str) -> None:
    if not name.strip():
        raise _Problem("the name is empty" if not name else "the name is blank")
    if len(name) > MAX_NAME_LENGTH:
        raise _Problem(
            f"the name has {len(name)} characters, more than {MAX_NAME_LENGTH}"
        )
    if blank := re.search(r"\s", name):
        raise _Problem(f"character {blank.start() + 1} is whitespace; names have none")
    if ":" in name:
        raise _Problem("':' separates a Rucio scope from a name; give the name alone")


def _kind_of(project: str) -> str:
    lowered = project.lower()
    if lowered in ("user", "group"):
        return "user"
    if lowered.startswith(("mc", "data")):
        return "mc" if lowered.startswith("mc") else "data"
    raise _Problem(
        f"field 1 (project) {project!r} must be mc<NN>_<energy>, "
        "data<NN>_<energy>, 'user' or 'group', e.g. 'mc16_13TeV' or 'data15_13TeV'"
    )


def _mc_name(fields: list[str], container: bool) -> DatasetName:
    if len(fields) != 6:
        raise _Problem(
            f"expected 6 dot-separated fields {_MC_LAYOUT}, got {len(fields)}"
        )
    project, number, short, step, data_type, version = fields
    return DatasetName(
        kind="mc",
        project=_MC_PROJECT.check(project),
        scope=project,
        dataset_number=int(_DATASET_NUMBER.check(number)),
        physics_short=_PHYSICS_SHORT.check(short),
        prod_step=_prod_step(step),
        data_type=_data_type(data_type),
        version=version,
        tags=_version_tags(version),
        container=container,
    )


def _data_name(fields: list[str], container: bool) -> DatasetName:
    _check_data_count(fields)
    project, number, stream, step, data_type, *rest = fields
    version = rest[0] if rest else None
    return DatasetName(
        kind="data",
        project=_DATA_PROJECT.check(project),
        scope=project,
        run_number=int(_RUN_NUMBER.check(number)),
        stream_name=_STREAM_NAME.check(stream),
        prod_step=_prod_step(step),
        data_type=_data_type(data_type),
        version=_raw_has_no_version(data_type, version),
        tags=_version_tags(version) if version is not None else (),
        container=container,
    )


def _check_data_count(fields: list[str]) -> None:
    count = len(fields)
    if count == 5 and fields[4] != "RAW":
        raise _Problem(
            f"expected 6 dot-separated fields {_DATA_LAYOUT}, got 5; "
            "only RAW datasets have no version"
        )
    if count not in (5, 6):
        raise _Problem(
            f"expected 6 dot-separated fields {_DATA_LAYOUT} (5 for RAW), got {count}"
        )


def _raw_has_no_version(data_type: str, version: str | None) -> str | None:
    if data_type == "RAW" and version is not None:
        raise _Problem(f"field 6 (version) {version!r} must be absent for RAW data")
    return version


def _user_name(fields: list[str], container: bool) -> DatasetName:
    project, *rest = fields
    if project not in _OWNERS:
        raise _Problem(f"field 1 (project) {project!r} must be 'user' or 'group'")
    if len(rest) < 2:
        owner = "<login>" if project == "user" else "<group>"
        layout = f"{project}.{owner}.<free text>"
        raise _Problem(
            f"expected at least 3 dot-separated fields {layout}, got {len(fields)}"
        )
    owner = _OWNERS[project].check(rest[0])
    free = [_free_part(position, part) for position, part in enumerate(rest[1:], 3)]
    return DatasetName(
        kind="user",
        project=project,
        scope=f"{project}.{owner}",
        free=".".join(free),
        container=container,
    )


def _free_part(position: int, part: str) -> str:
    label = f"field {position} (free text)"
    return _Field(label, _FREE_PART, "letters, digits, '_' and '-'").check(part)


def _prod_step(step: str) -> str:
    if step in PROD_STEPS:
        return step
    close = difflib.get_close_matches(step.lower(), PROD_STEPS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise _Problem(
        f"field 4 (prodStep) {step!r} is not a known production step; "
        f"expected one of {', '.join(PROD_STEPS)}{hint}"
    )


def _data_type(value: str) -> str:
    try:
        return _DATA_TYPE.check(value)
    except _Problem as problem:
        upper = value.upper()
        fits = _DATA_TYPE.pattern.fullmatch(upper)
        hint = f"; did you mean {upper!r}?" if value and fits else ""
        raise _Problem(f"{problem}{hint}") from None


def _version_tags(version: str) -> tuple[AmiTag, ...]:
    try:
        return _tag_chain(version)
    except _Problem as problem:
        raise _Problem(f"field 6 (version) {version!r}: {problem}") from None


_PARSERS: dict[str, Callable[[list[str], bool], DatasetName]] = {
    "mc": _mc_name,
    "data": _data_name,
    "user": _user_name,
}


# -- Building names --------------------------------------------------------------

# The first argument tells the kind. The tags (or the version) are needed for
# MC and optional for real data, where RAW has none.
_BUILD_ARGUMENTS = {
    "mc": ("dataset_number", "project", "physics_short", "prod_step", "data_type"),
    "data": ("run_number", "project", "stream_name", "prod_step", "data_type"),
    "user": ("scope", "free"),
}
_KIND_WORDS = {"mc": "an MC", "data": "a real-data", "user": "a user or group"}
_ARGUMENT_WORDS = {"tags": "tags (or version)"}


@overload
def build_dataset_name(
    *,
    project: str,
    dataset_number: int,
    physics_short: str,
    prod_step: str,
    data_type: str,
    tags: Iterable[AmiTag | str] = ...,
    version: str = ...,
    container: bool = ...,
) -> str: ...
@overload
def build_dataset_name(
    *,
    project: str,
    run_number: int,
    stream_name: str,
    prod_step: str,
    data_type: str,
    tags: Iterable[AmiTag | str] = ...,
    version: str = ...,
    container: bool = ...,
) -> str: ...
@overload
def build_dataset_name(*, scope: str, free: str, container: bool = ...) -> str: ...
def build_dataset_name(
    *,
    project: str | None = None,
    dataset_number: int | None = None,
    physics_short: str | None = None,
    run_number: int | None = None,
    stream_name: str | None = None,
    prod_step: str | None = None,
    data_type: str | None = None,
    tags: Iterable[AmiTag | str] | None = None,
    version: str | None = None,
    scope: str | None = None,
    free: str | None = None,
    container: bool = False,
) -> str:
    """Build a dataset name from its parts and check it.

    The arguments tell the kind: *dataset_number* with *project*,
    *physics_short*, *prod_step*, *data_type* and the tags for MC; *run_number*
    with *stream_name* instead, and no tags for RAW, for real data; *scope*
    (``"user.jdoe"``) and *free* for user and group names. Give the tags either
    as *tags* (AmiTag objects or strings) or as the *version* text
    (``"e3601_s3126"``). Numbers are zero-padded to 6 digits (8 for runs).
    *container* (default False) adds the ``/`` of a DDM container.

    :raises TypeError: when the arguments mix kinds or miss one.
    :raises InvalidName: when a part is wrong, naming its field.
    """
    if tags is not None and version is not None:
        raise TypeError("build_dataset_name() takes tags or version, not both")
    given: dict[str, object] = {
        "project": project,
        "dataset_number": dataset_number,
        "physics_short": physics_short,
        "run_number": run_number,
        "stream_name": stream_name,
        "prod_step": prod_step,
        "data_type": data_type,
        "tags": version if tags is None else tags,
        "scope": scope,
        "free": free,
    }
    kind = _build_kind(given)
    chain = _flat_tags(tags if tags is not None else (version or ()))
    fields = _build_fields(kind, given, chain)
    text = ".".join(map(str, fields)) + ("/" if container else "")
    parse_dataset_name(text)
    return text


def _build_kind(given: dict[str, object]) -> str:
    present = {key for key, value in given.items() if value is not None}
    kinds = [kind for kind, keys in _BUILD_ARGUMENTS.items() if keys[0] in present]
    if len(kinds) != 1:
        raise TypeError(
            "build_dataset_name() takes one of dataset_number (MC), "
            "run_number (real data) or scope (user and group names)"
        )
    kind = kinds[0]
    needed = _BUILD_ARGUMENTS[kind] + (("tags",) if kind == "mc" else ())
    allowed = needed + (("tags",) if kind == "data" else ())
    if missing := [_ARGUMENT_WORDS.get(k, k) for k in needed if k not in present]:
        raise TypeError(f"{_KIND_WORDS[kind]} name needs {', '.join(missing)}")
    if extra := sorted(present - set(allowed)):
        raise TypeError(f"{', '.join(extra)} not used in {_KIND_WORDS[kind]} name")
    return kind


def _build_fields(
    kind: str, given: dict[str, object], chain: tuple[AmiTag, ...]
) -> list[object]:
    if kind == "user":
        return [given["scope"], given["free"]]
    mc = kind == "mc"
    number = _padded(given["dataset_number" if mc else "run_number"], 6 if mc else 8)
    middle = given["physics_short" if mc else "stream_name"]
    version = [build_tag_chain(chain)] if chain or mc else []
    step_and_type = [given["prod_step"], given["data_type"]]
    return [given["project"], number, middle, *step_and_type, *version]


def _padded(number: object, width: int) -> str:
    # Whatever is not a number is left for parse_dataset_name to report.
    return str(number).zfill(width)

"""Hypothesis strategies for policies, actors, typed tokens, clocks and command sequences.

Every strategy generates valid values only: a policy from ``policies()`` always builds,
an actor from ``actors()`` always constructs, a command from ``command_sequences()``
always names an action the API has. What is *invalid* is left to the values a test feeds
in on purpose (the wrong tokens of ``tokens()``, the unknown ids of
``acknowledgement_sets()``), each of which the lifecycle must refuse with a typed error.

Use them in a host's own tests::

    from hypothesis import given
    from account_lifecycle.testing import strategies as lst

    @given(policy=lst.policies(), typed=lst.tokens("CONFIRM"))
    def test_...(policy, typed): ...

Parts of a policy can be pinned by handing ``policies()`` a strategy for that part:
``policies(window=st.none())``, ``policies(survey=st.just(SurveyPolicy("off", ())))``.
The extra ``testing`` installs Hypothesis.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal

import attrs
from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from account_lifecycle.duration import Duration
from account_lifecycle.errors import LifecycleError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import AccountRecord, Action, Actor, Relation, SurveyOutcome
from account_lifecycle.policy import (
    ACTIONS_WITH_PERMISSIONS,
    IDENTITY_REUSE,
    INVARIANTS,
    ON_CANCEL_EFFECTS,
    SURVEY_MODES,
    Acknowledgement,
    ConfirmationPolicy,
    Policy,
    PurgeCategory,
    PurgePolicy,
    RecoveryPhase,
    RecoveryPolicy,
    SurveyPolicy,
)
from account_lifecycle.purge import SweepReport

__all__ = [
    "COMMAND_ACTIONS",
    "ROLES",
    "WRONG_TOKEN_KINDS",
    "Command",
    "CommandResult",
    "Role",
    "Timeline",
    "acknowledgement_sets",
    "actors",
    "closure_policies",
    "closure_recoveries",
    "command_sequences",
    "confirmation_policies",
    "identifiers",
    "names",
    "permission_maps",
    "policies",
    "policy_tokens",
    "purge_policies",
    "recovery_windows",
    "run_commands",
    "survey_policies",
    "timelines",
    "token_variant",
    "tokens",
    "unreachable_confirm",
]

#: Who sends a command, resolved against the account when it runs (the owner may change).
Role = Literal["owner", "member", "support", "system", "stranger"]
ROLES: Final[tuple[Role, ...]] = ("owner", "member", "support", "system", "stranger")

#: Canonical tokens a host might choose, ASCII and not; generated ones are added to these.
_SAMPLE_TOKENS: Final = (
    "CONFIRM",
    "DELETE",
    "delete my account",
    "Cancel",
    "BESTÄTIGEN",
    "SUPPRIMER DÉFINITIVEMENT",
    "SUPPRIME\u0301",  # decomposed: its NFC form is another string
    "УДАЛИТЬ",
    "ΔΙΑΓΡΑΦΗ",
    "確認",
    "löschen",
)
#: Letters and their look-alikes in other scripts (Cyrillic, Greek, letter-like symbols).
_HOMOGLYPHS: Final[Mapping[str, str]] = {
    "A": "\u0410\u0391",
    "B": "\u0412\u0392",
    "C": "\u0421\u216d",
    "E": "\u0415\u0395",
    "H": "\u041d\u0397",
    "I": "\u0406\u0399",
    "K": "\u041a\u039a\u212a",  # U+212A KELVIN SIGN: its NFC form is K itself
    "M": "\u041c\u039c",
    "N": "\u039d",
    "O": "\u041e\u039f",
    "P": "\u0420\u03a1",
    "T": "\u0422\u03a4",
    "X": "\u0425\u03a7",
    "Y": "\u04ae\u03a5",
    "Z": "\u0396",
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "o": "\u043e\u03bf",
    "p": "\u0440",
    "x": "\u0445",
    "y": "\u0443",
    "\u00c5": "\u212b",  # ANGSTROM SIGN, canonically equivalent to Å
}
_ZERO_WIDTH: Final = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
_SPACES: Final = (" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000")
_MONTH_ENDS: Final = ((1, 31), (2, 28), (2, 29), (4, 30), (8, 31), (11, 30), (12, 31))
_LEAP_YEARS: Final = (2028, 2032)
_PLAIN_YEARS: Final = (2026, 2027, 2029, 2030)
_FORMS: Final[tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...]] = ("NFC", "NFD", "NFKC", "NFKD")
_RETURNING_OUTCOMES: Final = (SurveyOutcome.KEEP_ACCOUNT, SurveyOutcome.BOOK_MEETING)
_UNKNOWN_ACK: Final = "not_a_real_acknowledgement"
_UNKNOWN_SERVICE: Final = "no_such_service"
_UNKNOWN_CATEGORY: Final = "no_such_category"
_UNOFFERED_WINDOW: Final = Duration(45, "days")

# -- small parts ---------------------------------------------------------------------------


def names() -> SearchStrategy[str]:
    """Lower-case names as a policy uses them (categories, prerequisites, services, ids)."""
    return st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


def _unique_names(max_size: int) -> SearchStrategy[tuple[str, ...]]:
    return st.lists(names(), unique=True, max_size=max_size).map(tuple)


def identifiers() -> SearchStrategy[str]:
    """Ids a host hands in (account, user, identity): printable, no surrounding spaces, any script."""
    return st.text(
        st.characters(categories=("L", "N", "P", "S")),
        min_size=1,
        max_size=40,
    )


def _text(*, min_size: int = 1, max_size: int = 80) -> SearchStrategy[str]:
    """Free text a policy may hold (acknowledgement texts, descriptions): no control characters
    except line breaks and tabs."""
    chars = st.characters(exclude_categories=("Cc", "Cs"), include_characters="\n\t")
    text = st.text(chars, min_size=min_size, max_size=max_size)
    return text.filter(lambda t: t.strip()) if min_size else text


def _policy_names() -> SearchStrategy[str]:
    words = st.text(st.characters(categories=("L", "Nd")), min_size=1, max_size=12)
    return st.one_of(
        st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
        st.lists(words, min_size=1, max_size=3).map(" ".join),
    ).filter(lambda n: n.isprintable() and len(n) <= 100)


def _generated_tokens() -> SearchStrategy[str]:
    ascii_tokens = st.from_regex(r"[A-Z][A-Z0-9_-]{0,15}( [A-Z0-9]{1,8})?", fullmatch=True)
    any_script = st.lists(
        st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=10),
        min_size=1,
        max_size=3,
    ).map(" ".join)
    return st.one_of(ascii_tokens, any_script).filter(lambda t: t.isprintable() and len(t) <= 200)


def policy_tokens() -> SearchStrategy[str]:
    """Tokens a policy may ask for: ASCII or not, words with inner spaces, decomposed forms."""
    return st.one_of(st.sampled_from(_SAMPLE_TOKENS), _generated_tokens())


# -- policy parts ----------------------------------------------------------------------------


@st.composite
def survey_policies(draw: st.DrawFn) -> SurveyPolicy:
    """A survey mode and the outcomes it offers, always including ``cancel`` (in any order)."""
    mode = draw(st.sampled_from(SURVEY_MODES))
    others = draw(st.lists(st.sampled_from(_RETURNING_OUTCOMES), unique=True))
    outcomes = draw(st.permutations([SurveyOutcome.CANCEL, *others]))
    if mode == "off" and draw(st.booleans()):
        outcomes = []  # with no survey the outcomes are never asked; none is fine too
    return SurveyPolicy(mode, tuple(outcomes))


@st.composite
def confirmation_policies(draw: st.DrawFn) -> ConfirmationPolicy:
    """No token or one (ASCII or not), and zero to four acknowledgements."""
    token = draw(st.none() | policy_tokens())
    ids = draw(_unique_names(4))
    acks = tuple(Acknowledgement(ack_id, draw(_text())) for ack_id in ids)
    return ConfirmationPolicy(token, acks)


def recovery_windows() -> SearchStrategy[Duration | None]:
    """No window, or a window in days, weeks, months or years."""
    return st.one_of(
        st.none(),
        st.builds(Duration, st.integers(1, 400), st.just("days")),
        st.builds(Duration, st.integers(1, 60), st.just("weeks")),
        st.builds(Duration, st.integers(1, 36), st.just("months")),
        st.builds(Duration, st.integers(1, 5), st.just("years")),
    )


_ANY_RELATIONS: Final = st.frozensets(st.sampled_from(list(Relation)))


def permission_maps() -> SearchStrategy[dict[Action, frozenset[Relation]]]:
    """Which relations may take each action. The owner alone is the most common answer, so
    generated policies still let accounts get far into the lifecycle."""
    relations = st.one_of(st.just(frozenset({Relation.OWNER})), _ANY_RELATIONS)
    return st.fixed_dictionaries(dict.fromkeys(ACTIONS_WITH_PERMISSIONS, relations))


@st.composite
def purge_policies(draw: st.DrawFn, has_window: bool) -> PurgePolicy:
    """Categories erased at cancel (or at expiry, only *has_window*), and protected categories
    disjoint from them."""
    every = draw(_unique_names(8))
    split = draw(st.integers(0, len(every)))
    moments = ("cancel", "expiry") if has_window else ("cancel",)
    categories = tuple(PurgeCategory(name, draw(st.sampled_from(moments))) for name in every[:split])
    return PurgePolicy(categories, every[split:])


#: Token templates: the account's own id to type (docs/closure-features.md).
TEMPLATE_TOKENS: Final = ("DELETE {account_id}", "{account_id}", "löschen {account_id} JETZT")
#: Step-up login ages a generated policy may ask for.
FRESH_LOGINS: Final = (Duration(15, "minutes"), Duration(2, "hours"))
#: Reminders a generated policy may send before its window ends.
REMINDERS: Final = (Duration(1, "days"), Duration(3, "days"), Duration(7, "days"))
_SHORTEST_DAYS: Final = {"days": 1, "weeks": 7, "months": 28, "years": 365}


@st.composite
def policies(
    draw: st.DrawFn,
    *,
    survey: SearchStrategy[SurveyPolicy] | None = None,
    confirmation: SearchStrategy[ConfirmationPolicy] | None = None,
    window: SearchStrategy[Duration | None] | None = None,
    permissions: SearchStrategy[Mapping[Action, frozenset[Relation]]] | None = None,
    prerequisites: SearchStrategy[tuple[str, ...]] | None = None,
    services: SearchStrategy[tuple[str, ...]] | None = None,
) -> Policy:
    """Valid ``Policy`` variants across every option, the closure features included: a
    recovery ``window``, ``phases`` or ``choices`` (with reminders), a token template with
    ``{account_id}``, a step-up ``fresh_login``, legal holds (``on_hold`` "wait" or "retain")
    and identity rules per kind of identifier. Each is drawn on or off.

    Each keyword pins one part with a strategy of your own; the parts that depend on it
    follow: ``at = "expiry"`` categories and ``identity_reuse`` follow the window (no
    expiry purge and no ``after_cancel`` or ``at_once`` reuse with a window), and a policy
    that lets anyone but the owner confirm waives ``owner_confirms``. Pinning ``window``
    (``st.none()`` included) leaves out ``phases`` and ``choices``; pinning ``confirmation``
    keeps its token and ``fresh_login`` as they are.
    """
    drawn_permissions = dict(draw(permissions if permissions is not None else permission_maps()))
    if window is not None:
        drawn_window = draw(window)
        recovery = RecoveryPolicy(drawn_window)
        if drawn_window is not None and draw(st.booleans()):
            recovery = _with_reminders(draw, recovery, drawn_window)
    else:
        recovery = draw(closure_recoveries(drawn_permissions.get(Action.RESTORE, frozenset())))
    has_window = recovery.has_window
    waivers = set(draw(st.lists(st.sampled_from(INVARIANTS), unique=True, max_size=2)))
    if drawn_permissions.get(Action.CONFIRM, frozenset()) - {Relation.OWNER}:
        waivers.add("owner_confirms")
    reuse = [r for r in IDENTITY_REUSE if not (has_window and r == "after_cancel")]
    if confirmation is not None:
        drawn_confirmation = draw(confirmation)
    else:
        drawn_confirmation = draw(confirmation_policies())
        if draw(st.integers(0, 3)) == 0:
            drawn_confirmation = attrs.evolve(
                drawn_confirmation, token=draw(st.sampled_from(TEMPLATE_TOKENS))
            )
        fresh = draw(st.one_of(st.none(), st.none(), st.sampled_from(FRESH_LOGINS)))
        drawn_confirmation = attrs.evolve(drawn_confirmation, fresh_login=fresh)
    purge = draw(purge_policies(has_window))
    purge = attrs.evolve(purge, on_hold=draw(st.sampled_from([None, "wait", "retain"])))
    rules = ["never", "after_purge", "after 30 days"] + ([] if has_window else ["at_once"])
    identity = draw(st.dictionaries(st.sampled_from(["email", "phone"]), st.sampled_from(rules), max_size=2))
    return Policy(
        name=draw(_policy_names()),
        version=draw(st.integers(1, 1000)),
        survey=draw(survey if survey is not None else survey_policies()),
        confirmation=drawn_confirmation,
        prerequisites=draw(prerequisites if prerequisites is not None else _unique_names(3)),
        permissions=drawn_permissions,
        recovery=recovery,
        purge=purge,
        on_cancel=tuple(draw(st.lists(st.sampled_from(ON_CANCEL_EFFECTS), unique=True))),
        identity_reuse=draw(st.sampled_from(reuse)),
        services=draw(services if services is not None else _unique_names(3)),
        waivers=tuple(w for w in INVARIANTS if w in waivers),
        description=draw(_text(min_size=0, max_size=60)),
        identity=identity,
    )


def _with_reminders(draw: st.DrawFn, recovery: RecoveryPolicy, shortest: Duration) -> RecoveryPolicy:
    """*recovery* with reminders shorter than the *shortest* window it can open."""
    days = _SHORTEST_DAYS.get(shortest.unit, 0) * shortest.amount
    fitting = [r for r in REMINDERS if r.amount < days]
    if not fitting:
        return recovery
    reminders = draw(st.lists(st.sampled_from(fitting), unique=True))
    return attrs.evolve(recovery, reminders=tuple(reminders))


_SHORT_WINDOWS: Final = st.one_of(
    st.builds(Duration, st.integers(10, 120), st.just("days")),
    st.builds(Duration, st.integers(2, 12), st.just("weeks")),
    st.builds(Duration, st.integers(1, 6), st.just("months")),
)


@st.composite
def closure_recoveries(draw: st.DrawFn, restore: frozenset[Relation]) -> RecoveryPolicy:
    """A recovery of any form: none, one window (from ``recovery_windows()``), ``phases``
    (each naming some of *restore*, the relations ``permissions.restore`` grants), or
    ``choices``; with reminders (shorter than the shortest window) drawn on or off whenever
    there is a window."""
    forms = ["window", "choices", *(["phases"] if restore else []), "none"]
    form = draw(st.sampled_from(forms))
    if form == "none":
        return RecoveryPolicy()
    if form == "window":
        window = draw(recovery_windows().filter(lambda w: w is not None))
        assert window is not None
        return _with_reminders(draw, RecoveryPolicy(window), window)
    if form == "choices":
        recovery = RecoveryPolicy(
            choices=tuple(draw(st.lists(_SHORT_WINDOWS, min_size=1, max_size=3, unique=True)))
        )
    else:
        granted = sorted(restore, key=list(Relation).index)
        phase = st.builds(
            RecoveryPhase,
            _SHORT_WINDOWS,
            st.lists(st.sampled_from(granted), min_size=1, unique=True).map(tuple),
        )
        recovery = RecoveryPolicy(phases=tuple(draw(st.lists(phase, min_size=1, max_size=3))))
    return _with_reminders(draw, recovery, Duration(10, "days"))


def closure_policies() -> SearchStrategy[Policy]:
    """``policies()``: valid policies with every closure feature in play
    (docs/closure-features.md), each drawn on or off. Kept by this name for the tests that
    asked for closure features before ``policies()`` drew them all."""
    return policies()


# -- actors, tokens, acknowledgements ------------------------------------------------------


def actors(user_ids: Sequence[str] = ()) -> SearchStrategy[Actor]:
    """Users, support agents and the system. With *user_ids* (say an account's owner and
    members), users are mostly drawn from them, and sometimes are strangers."""
    users = identifiers()
    if user_ids:
        users = st.one_of(st.sampled_from(list(user_ids)), identifiers())
    return st.one_of(
        st.builds(Actor.user, users),
        st.builds(Actor.support, identifiers()),
        st.just(Actor.system()),
    )


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


@st.composite
def _case_variants(draw: st.DrawFn, expected: str) -> str:
    whole = [str.lower, str.upper, str.swapcase, str.casefold, str.title, str.capitalize]
    if draw(st.booleans()):
        return str(draw(st.sampled_from(whole))(expected))
    flips = draw(st.lists(st.booleans(), min_size=len(expected), max_size=len(expected)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(expected, flips, strict=True))


@st.composite
def _whitespace_variants(draw: st.DrawFn, expected: str) -> str:
    space = draw(st.sampled_from(_SPACES))
    where = draw(st.sampled_from(("leading", "trailing", "both", "inner")))
    if where == "leading":
        return space + expected
    if where == "trailing":
        return expected + space
    if where == "both":
        return space + expected + space
    cut = draw(st.integers(0, len(expected)))
    return expected[:cut] + space + expected[cut:]


@st.composite
def _lookalikes(draw: st.DrawFn, expected: str) -> str:
    kind = draw(st.sampled_from(("fullwidth", "homoglyph", "zero_width")))
    if kind == "fullwidth" and _fullwidth(expected) != expected:
        return _fullwidth(expected)
    swappable = [i for i, c in enumerate(expected) if c in _HOMOGLYPHS]
    if kind == "homoglyph" and swappable:
        index = draw(st.sampled_from(swappable))
        glyph = draw(st.sampled_from(_HOMOGLYPHS[expected[index]]))
        return expected[:index] + glyph + expected[index + 1 :]
    cut = draw(st.integers(0, len(expected)))
    return expected[:cut] + draw(st.sampled_from(_ZERO_WIDTH)) + expected[cut:]


def _normal_forms(expected: str) -> SearchStrategy[str]:
    return st.sampled_from([unicodedata.normalize(form, expected) for form in _FORMS])


def _edges(expected: str) -> SearchStrategy[str]:
    return st.sampled_from(
        [
            "",
            expected[:-1],
            expected + expected[-1],
            expected * 2,
            expected + "x" * 10_000,
            "x" * 10_000,
        ]
    )


#: Named ways of typing a token wrong, each a kind of lax comparison it would catch.
WRONG_TOKEN_KINDS: Final = (
    "lower",  # case folding
    "padded",  # trimming: a leading space
    "trailing_newline",  # trimming: pasted with its line break
    "inner_space",  # whitespace collapsing
    "lookalike",  # a Cyrillic or Greek homoglyph (or a zero-width space if none applies)
    "fullwidth",  # NFKC normalisation: fullwidth forms
    "zero_width",  # stripping invisible characters
    "normalised",  # NFC/NFD: a canonically equivalent spelling
    "empty",
    "none",  # no token at all
)


def token_variant(expected: str, kind: str) -> str | None:
    """*expected* typed wrong in the way *kind* names (one of ``WRONG_TOKEN_KINDS``, or
    ``"exact"``). Every wrong kind differs from *expected*: where a kind cannot apply (the
    lower case of ``"123"``), a character is appended or inserted instead."""
    if kind == "exact":
        return expected
    if kind == "none":
        return None
    if kind == "empty":
        return ""
    if kind == "lower":
        for fold in (str.lower, str.upper, str.swapcase):
            if fold(expected) != expected:
                return fold(expected)
        return expected + "x"
    if kind == "padded":
        return " " + expected
    if kind == "trailing_newline":
        return expected + "\n"
    if kind == "inner_space":
        middle = max(1, len(expected) // 2)
        return expected[:middle] + " " + expected[middle:]
    if kind == "lookalike":
        for index, char in enumerate(expected):
            if char in _HOMOGLYPHS:
                return expected[:index] + _HOMOGLYPHS[char][0] + expected[index + 1 :]
        return expected[:1] + "\u200b" + expected[1:]
    if kind == "fullwidth":
        wide = _fullwidth(expected)
        return wide if wide != expected else expected + "\u3000"
    if kind == "zero_width":
        return expected[:1] + "\u200d" + expected[1:]
    if kind == "normalised":
        for form in _FORMS:
            other = unicodedata.normalize(form, expected)
            if other != expected:
                return other
        first = _fullwidth(expected[:1])  # NFKC maps a fullwidth letter back to ASCII
        return first + expected[1:] if first != expected[:1] else expected + "\u0301"
    raise ValueError(
        f"unknown token variant {kind!r}; expected 'exact' or one of {', '.join(WRONG_TOKEN_KINDS)}"
    )


def tokens(expected: str | None) -> SearchStrategy[str | None]:
    """What an actor might type at the confirmation step of a policy asking for *expected*.

    The exact token (often), no token at all, its case variants, leading, trailing and
    inner whitespace, look-alikes (fullwidth forms, Cyrillic and Greek homoglyphs, zero-width
    characters), its NFC/NFD/NFKC/NFKD forms, the empty string, a truncation and very long
    strings. Only the exact token may be accepted: decide with
    ``typed == expected``, since a variant can coincide with the token (the lower case of
    ``"123"``, the NFC form of an NFC token). With ``expected=None`` (a plain confirm) any
    token, or none, is drawn.
    """
    if expected is None:
        return st.one_of(st.none(), policy_tokens(), st.just(""))
    variants = st.one_of(
        st.sampled_from(WRONG_TOKEN_KINDS).map(lambda kind: token_variant(expected, kind)),
        _case_variants(expected),
        _whitespace_variants(expected),
        _lookalikes(expected),
        _normal_forms(expected),
        _edges(expected),
    )
    return st.one_of(st.just(expected), variants)


def acknowledgement_sets(policy: Policy) -> SearchStrategy[frozenset[str]]:
    """Sets of acknowledgement ids for *policy*: all of them (about a third of the draws), any subset,
    and sometimes an id the policy does not know (a ``ValueError`` for the lifecycle)."""
    required = [a.id for a in policy.confirmation.acknowledgements]
    every = st.just(frozenset(required))
    subsets = st.frozensets(st.sampled_from(required)) if required else st.just(frozenset[str]())
    with_unknown = subsets.map(lambda s: s | {_UNKNOWN_ACK})
    return st.one_of(every, subsets, with_unknown)


# -- time ------------------------------------------------------------------------------------


@attrs.frozen
class Timeline:
    """A cancellation moment, a recovery window, and the moments the clock visits after it
    (ascending), clustered around the window's end.

    ``restorable_until`` is *not* computed here: a test compares the lifecycle's own value
    with an independent oracle (``reference.window_end``) and the clock moves with it.
    """

    cancelled_at: datetime
    window: Duration
    offsets: tuple[timedelta, ...]  # each relative to the window's end

    def moments(self, end: datetime) -> tuple[datetime, ...]:
        """The clock's stops, given the window's *end*."""
        return tuple(end + offset for offset in self.offsets)


def _month_end_starts() -> SearchStrategy[datetime]:
    """Moments on the last days of months (30 Nov, 31 Jan, 28/29 Feb, ...), any time of day."""

    @st.composite
    def build(draw: st.DrawFn) -> datetime:
        month, day = draw(st.sampled_from(_MONTH_ENDS))
        years = _LEAP_YEARS if (month, day) == (2, 29) else _LEAP_YEARS + _PLAIN_YEARS
        year = draw(st.sampled_from(years))
        moment = draw(
            st.one_of(
                st.sampled_from([time(0, 0), time(12, 0), time(23, 59, 59, 999_999)]),
                st.times(),
            )
        )
        return datetime.combine(date(year, month, day), moment, tzinfo=UTC)

    return build()


_TICK: Final = timedelta(microseconds=1)
_BOUNDARY_OFFSETS: Final = (-_TICK, timedelta(0), _TICK)


@st.composite
def timelines(
    draw: st.DrawFn,
    windows: SearchStrategy[Duration] | None = None,
    *,
    max_moves: int = 6,
) -> Timeline:
    """Clock moves around a window's end: exactly at the end, one microsecond before and
    after, and a few spread out, from cancellations on month-end dates (30 Nov, 31 Jan,
    29 Feb) and at any other moment."""
    window = draw(windows if windows is not None else recovery_windows().filter(lambda w: w is not None))
    assert window is not None
    start = draw(
        st.one_of(
            _month_end_starts(),
            st.datetimes(datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
        )
    )
    spread = st.timedeltas(-timedelta(days=40), timedelta(days=40))
    offsets = draw(
        st.lists(st.one_of(st.sampled_from(_BOUNDARY_OFFSETS), spread), min_size=1, max_size=max_moves)
    )
    return Timeline(cancelled_at=start, window=window, offsets=tuple(sorted(offsets)))


# -- commands --------------------------------------------------------------------------------

_SUPPORT = Actor.support("support-1")
_IDENTITIES: Final = ("renamed-1@example.com", "renamed-2@example.com")
_STRANGER = Actor.user("stranger-1")


#: What a ``Command`` may do: the user actions of the lifecycle, legal holds, a sweep, or a
#: clock move.
COMMAND_ACTIONS: Final[tuple[str, ...]] = (
    *ACTIONS_WITH_PERMISSIONS,
    Action.PLACE_HOLD.value,
    Action.RELEASE_HOLD.value,
    "sweep",
    "advance_clock",
)


@attrs.frozen
class Command:
    """One step a test applies to one account: a lifecycle command (an ``Action`` value),
    ``"sweep"``, or ``"advance_clock"`` (``COMMAND_ACTIONS``). The sender is a ``Role``,
    resolved against the stored record when the command runs."""

    action: str = attrs.field(validator=attrs.validators.in_(COMMAND_ACTIONS))
    role: Role = "owner"
    token: str | None = None
    acknowledgements: frozenset[str] = frozenset()
    outcome: SurveyOutcome | None = None
    service: str | None = None
    new_owner_role: Role = "member"
    advance: timedelta = timedelta(0)
    #: how long ago the actor logged in (``confirm(authenticated_at=now - login)``; a
    #: negative one lies in the future), or None for no login time
    login: timedelta | None = None
    window: Duration | None = None  # the recovery window picked at confirm
    category: str | None = None  # the category of a hold
    #: ``change_identity``: the new identity (a made-up address; digested by the lifecycle)
    identity: str | None = None

    def actor(self, record: AccountRecord, role: Role | None = None) -> Actor:
        """The actor playing *role* (default: this command's) for *record*."""
        role = role or self.role
        if role == "owner":
            return Actor.user(record.owner)
        if role == "member" and record.members:
            return Actor.user(sorted(record.members)[0])
        if role == "support":
            return _SUPPORT
        if role == "system":
            return Actor.system()
        return _STRANGER

    def run(
        self,
        lifecycle: Lifecycle,
        account_id: str,
        advance_clock: Callable[[timedelta], object] | None = None,
    ) -> AccountRecord | SweepReport | None:
        """Apply the command; errors propagate. ``advance_clock`` moves the clock (say
        ``ManualClock.advance``); without it, clock moves are skipped and return None."""
        if self.action == "advance_clock":
            if advance_clock is not None:
                advance_clock(self.advance)
            return None
        if self.action == "sweep":
            return lifecycle.sweep()
        record = lifecycle.get(account_id)
        actor = self.actor(record)
        action = Action(self.action)
        if action is Action.REQUEST_CANCELLATION:
            return lifecycle.request_cancellation(account_id, actor)
        if action is Action.SUBMIT_SURVEY:
            assert self.outcome is not None
            return lifecycle.submit_survey(account_id, actor, self.outcome)
        if action is Action.SKIP_SURVEY:
            return lifecycle.skip_survey(account_id, actor)
        if action is Action.WITHDRAW:
            return lifecycle.withdraw(account_id, actor)
        if action is Action.CONFIRM:
            # a token with {account_id} is rendered for the account, whatever else was typed
            token = None if self.token is None else self.token.replace("{account_id}", account_id)
            login = None if self.login is None else lifecycle.clock.now() - self.login
            return lifecycle.confirm(
                account_id,
                actor,
                token,
                self.acknowledgements,
                window=self.window,
                authenticated_at=login,
            )
        if action is Action.RESTORE:
            return lifecycle.restore(account_id, actor)
        if action is Action.TRANSFER_OWNERSHIP:
            new_owner = self.actor(record, self.new_owner_role)
            return lifecycle.transfer_ownership(account_id, actor, new_owner.id)
        if action is Action.CANCEL_SERVICE:
            assert self.service is not None
            return lifecycle.cancel_service(account_id, actor, self.service)
        if action in (Action.ADD_MEMBER, Action.REMOVE_MEMBER):
            # the user added or removed plays new_owner_role: a member, the owner, a stranger
            user = self.actor(record, self.new_owner_role).id
            change = lifecycle.add_member if action is Action.ADD_MEMBER else lifecycle.remove_member
            return change(account_id, actor, user)
        if action is Action.CHANGE_IDENTITY:
            assert self.identity is not None
            return lifecycle.change_identity(account_id, actor, self.identity)
        if action is Action.PLACE_HOLD:
            assert self.category is not None
            return lifecycle.place_hold(account_id, actor, self.category, "case-1")
        if action is Action.RELEASE_HOLD:
            assert self.category is not None
            return lifecycle.release_hold(account_id, actor, self.category)
        raise AssertionError(f"no way to run {self.action!r}")  # pragma: no cover - validated


@attrs.frozen
class CommandResult:
    """What one command did: the record or report it returned, or the error that refused it."""

    command: Command
    value: AccountRecord | SweepReport | None = None
    error: Exception | None = None


def run_commands(
    lifecycle: Lifecycle,
    account_id: str,
    commands: Sequence[Command],
    advance_clock: Callable[[timedelta], object] | None = None,
) -> list[CommandResult]:
    """Apply *commands* in order. A refusal (``LifecycleError``, or ``ValueError`` for an
    input the policy does not offer) is recorded and the run goes on; anything else is a
    bug and propagates."""
    results = []
    for command in commands:
        try:
            value = command.run(lifecycle, account_id, advance_clock)
        except (LifecycleError, ValueError) as exc:
            results.append(CommandResult(command, error=exc))
        else:
            results.append(CommandResult(command, value=value))
    if currently_in_test_context():
        confirmed = any(r.command.action == Action.CONFIRM and r.error is None for r in results)
        why = unreachable_confirm(lifecycle.policy)
        event("confirm accepted" if confirmed else f"no confirm accepted{f': {why}' if why else ''}")
    return results


_ADVANCES: Final = st.one_of(
    st.sampled_from([timedelta(microseconds=1), timedelta(days=1), timedelta(days=30), timedelta(days=92)]),
    st.timedeltas(timedelta(0), timedelta(days=800)),
)


@st.composite
def _command(draw: st.DrawFn, policy: Policy) -> Command:
    action = draw(st.sampled_from(COMMAND_ACTIONS))
    role: Role = draw(st.one_of(st.just("owner"), st.sampled_from(ROLES)))
    if action == Action.SUBMIT_SURVEY:
        outcomes = list(policy.survey.outcomes) or list(SurveyOutcome)
        outcome = draw(st.one_of(st.sampled_from(outcomes), st.sampled_from(list(SurveyOutcome))))
        return Command(action, role, outcome=outcome)
    if action == Action.CONFIRM:
        fresh = policy.confirmation.fresh_login
        login = draw(_logins(fresh))
        offered: list[Duration | None] = [None, *policy.recovery.choices]
        return Command(
            action,
            role,
            token=draw(tokens(policy.confirmation.token)),
            acknowledgements=draw(acknowledgement_sets(policy)),
            login=login,
            window=draw(st.one_of(st.sampled_from(offered), st.sampled_from([*offered, _UNOFFERED_WINDOW]))),
        )
    if action in (Action.PLACE_HOLD, Action.RELEASE_HOLD):
        names = [c.name for c in policy.purge.categories]
        category = draw(
            st.one_of(st.sampled_from(names), st.just(_UNKNOWN_CATEGORY))
            if names
            else st.just(_UNKNOWN_CATEGORY)
        )
        return Command(action, draw(st.one_of(st.just("support"), st.sampled_from(ROLES))), category=category)
    if action == Action.CANCEL_SERVICE:
        service = draw(st.sampled_from([*policy.services, _UNKNOWN_SERVICE]))
        return Command(action, role, service=service)
    if action == Action.TRANSFER_OWNERSHIP:
        return Command(action, role, new_owner_role=draw(st.sampled_from(("member", "stranger"))))
    if action in (Action.ADD_MEMBER, Action.REMOVE_MEMBER):
        return Command(action, role, new_owner_role=draw(st.sampled_from(("member", "owner", "stranger"))))
    if action == Action.CHANGE_IDENTITY:
        return Command(action, role, identity=draw(st.sampled_from(_IDENTITIES)))
    if action == "advance_clock":
        return Command(action, "system", advance=draw(_ADVANCES))
    return Command(action, role)


def _logins(fresh: Duration | None) -> SearchStrategy[timedelta | None]:
    """How long ago the actor logged in: within *fresh* (most draws), exactly at it, a moment
    too long ago, in the future beyond the clock skew, or never (no login time)."""
    limit = timedelta(minutes=15)
    if fresh is not None:
        limit = fresh.add_to(datetime(2026, 1, 1, tzinfo=UTC)) - datetime(2026, 1, 1, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    edges = [limit, limit + tick, -(timedelta(minutes=1) + tick), None]
    return st.one_of(st.just(timedelta(minutes=1)), st.sampled_from([timedelta(minutes=1), *edges]))


def unreachable_confirm(policy: Policy) -> str | None:
    """Why no command sequence of *policy* can reach an accepted confirm, or None when one can
    (``command_sequences`` leads the owner there in about half of its sequences)."""
    if not policy.permissions.get(Action.CONFIRM):
        return "permissions.confirm grants nobody"
    if policy.survey.mode != "off" and SurveyOutcome.CANCEL not in policy.survey.outcomes:
        return "the survey offers no 'cancel'"
    return None


def command_sequences(policy: Policy, *, max_size: int = 20) -> SearchStrategy[list[Command]]:
    """Sequences of commands for one account of *policy*: every user action from every role,
    with tokens from ``tokens()`` (a ``{account_id}`` token rendered for the account),
    acknowledgements from ``acknowledgement_sets()``, fresh and stale login times, offered and
    unoffered window choices, offered and unoffered survey outcomes, known and unknown services,
    legal holds placed and released, sweeps and clock moves. Apply them with ``run_commands``.

    About half the sequences take the owner's way to an accepted confirm somewhere in the
    middle; ``run_commands`` counts in Hypothesis' statistics whether a run got there, and
    ``unreachable_confirm(policy)`` says why no sequence can."""
    anything = st.lists(_command(policy), max_size=max_size)
    half = max(max_size // 2 - 2, 0)
    around = st.tuples(
        st.lists(_command(policy), max_size=half),
        _owner_confirms(policy),
        st.lists(_command(policy), max_size=half),
    )
    return st.one_of(anything, around.map(lambda parts: [*parts[0], *parts[1], *parts[2]]))


def _owner_confirms(policy: Policy) -> SearchStrategy[list[Command]]:
    """The owner's way to an accepted confirm, from ``ACTIVE``: the request, the survey
    answered 'cancel' (or skipped), and a confirm with the exact token (rendered for the
    account), every acknowledgement, an offered window and a login from ``_logins`` (fresh
    in most draws; else at the limit, too old, in the future or missing)."""
    path = [Command(Action.REQUEST_CANCELLATION.value)]
    if policy.survey.mode != "off":
        path.append(Command(Action.SUBMIT_SURVEY.value, outcome=SurveyOutcome.CANCEL))
    acks = frozenset(a.id for a in policy.confirmation.acknowledgements)
    windows: list[Duration | None] = [None, *policy.recovery.choices]
    return st.tuples(st.sampled_from(windows), _logins(policy.confirmation.fresh_login)).map(
        lambda picked: [
            *path,
            Command(
                Action.CONFIRM.value,
                token=policy.confirmation.token,
                acknowledgements=acks,
                login=picked[1],
                window=picked[0],
            ),
        ]
    )

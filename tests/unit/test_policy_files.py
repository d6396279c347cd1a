"""Policy files: every malformed file is a ``PolicyError`` naming the key; valid files round-trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from account_lifecycle import (
    Acknowledgement,
    Action,
    ConfirmationPolicy,
    Duration,
    Policy,
    PolicyError,
    PurgeCategory,
    PurgePolicy,
    RecoveryPolicy,
    Relation,
    State,
    SurveyOutcome,
    SurveyPolicy,
    policies,
)
from account_lifecycle.machine import PolicyMachine
from account_lifecycle.policy import ACTIONS_WITH_PERMISSIONS, INVARIANTS, ON_CANCEL_EFFECTS
from account_lifecycle.policy_toml import KEYS, policy_from_bytes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy-files.md"
SMRTPHONE_TOML = policies.path("smrtphone").read_text(encoding="utf-8")
ALLCLIENTS_TOML = policies.path("allclients").read_text(encoding="utf-8")

MINIMAL = 'name = "tiny"\n'


def key_of(text: str) -> str:
    """The key the ``PolicyError`` raised for *text* names."""
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml(text)
    return caught.value.key


def smrtphone_with(old: str, new: str) -> str:
    assert old in SMRTPHONE_TOML
    return SMRTPHONE_TOML.replace(old, new, 1)


def allclients_with(old: str, new: str) -> str:
    assert old in ALLCLIENTS_TOML
    return ALLCLIENTS_TOML.replace(old, new, 1)


# -- one test per malformed case ------------------------------------------------------------


class TestMalformedFiles:
    def test_unknown_top_level_key(self) -> None:
        """A key the schema does not know is named, with the keys it expected."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(MINIMAL + 'colour = "red"\n')
        assert caught.value.key == "colour"
        assert "unknown key; expected one of name, version" in caught.value.message

    def test_misspelt_key_in_a_table_gets_a_suggestion(self) -> None:
        """A typo inside a table is named with its table and the likely intended key."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(smrtphone_with('mode = "required"', 'moed = "required"'))
        assert caught.value.key == "survey.moed"
        assert caught.value.message == "unknown key; expected one of mode, outcomes; did you mean 'mode'?"

    def test_version_of_the_wrong_type(self) -> None:
        """A quoted number is a string, not a version."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(smrtphone_with("version = 1", 'version = "1"'))
        assert str(caught.value) == "version: expected a whole number, got a string '1'"

    def test_version_zero(self) -> None:
        """Versions count from 1."""
        assert key_of(MINIMAL + "version = 0\n") == "version"

    def test_version_true_is_not_a_number(self) -> None:
        """TOML booleans are not whole numbers."""
        assert key_of(MINIMAL + "version = true\n") == "version"

    def test_missing_name(self) -> None:
        """Every policy file names its variant."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml("version = 2\n")
        assert str(caught.value) == "name: is required"

    def test_blank_name(self) -> None:
        """A name of spaces names nothing."""
        assert key_of('name = "   "\n') == "name"

    def test_name_spanning_lines(self) -> None:
        """The name is recorded in every audit event and must stay on one line."""
        assert key_of('name = "a\\nb"\n') == "name"

    def test_description_with_a_control_character(self) -> None:
        """Control characters (other than newline and tab) are refused in texts."""
        assert key_of(MINIMAL + 'description = "bell \\u0007"\n') == "description"

    def test_survey_mode_unknown(self) -> None:
        """The survey is required, optional or off."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(smrtphone_with('mode = "required"', 'mode = "sometimes"'))
        assert str(caught.value) == "survey.mode: expected one of required, optional, off, got 'sometimes'"

    def test_survey_outcomes_as_a_single_string(self) -> None:
        """A list with one item is still written as a list."""
        assert key_of(MINIMAL + '[survey]\noutcomes = "cancel"\n') == "survey.outcomes"

    def test_survey_outcome_unknown(self) -> None:
        """An outcome outside keep_account, book_meeting and cancel is named by index."""
        assert key_of(MINIMAL + '[survey]\noutcomes = ["cancel", "stay"]\n') == "survey.outcomes[1]"

    def test_survey_without_cancel(self) -> None:
        """A survey that never lets anyone cancel is refused."""
        assert key_of(MINIMAL + '[survey]\noutcomes = ["keep_account"]\n') == "survey.outcomes"

    def test_survey_not_a_table(self) -> None:
        """``survey`` is a table of settings."""
        assert key_of(MINIMAL + 'survey = "required"\n') == "survey"

    def test_empty_token(self) -> None:
        """An empty token could never be typed on purpose."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(smrtphone_with('token = "CONFIRM"', 'token = ""'))
        assert str(caught.value) == "confirmation.token: must not be empty"

    def test_token_of_spaces_only(self) -> None:
        """A token of spaces is as blank as an empty one."""
        assert key_of(smrtphone_with('token = "CONFIRM"', 'token = "   "')) == "confirmation.token"

    def test_token_with_surrounding_spaces(self) -> None:
        """Typed tokens are compared exactly; a trailing space would be an invisible trap."""
        assert key_of(smrtphone_with('token = "CONFIRM"', 'token = "CONFIRM "')) == "confirmation.token"

    def test_token_of_the_wrong_type(self) -> None:
        """``token = true`` is not text to type."""
        assert key_of(smrtphone_with('token = "CONFIRM"', "token = true")) == "confirmation.token"

    def test_acknowledgement_id_used_twice(self) -> None:
        """Two acknowledgements with one id could not be told apart."""
        text = smrtphone_with('id = "no_credit_refund"', 'id = "unported_numbers_lost"')
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(text)
        assert str(caught.value) == (
            "confirmation.acknowledgements[2].id: 'unported_numbers_lost' is listed twice"
        )

    def test_acknowledgement_without_text(self) -> None:
        """Each acknowledgement needs both its id and its text."""
        text = MINIMAL + '[confirmation]\nacknowledgements = [{ id = "a" }]\n'
        assert key_of(text) == "confirmation.acknowledgements[0].text"

    def test_acknowledgement_with_blank_text(self) -> None:
        """An acknowledgement must say something."""
        text = MINIMAL + '[confirmation]\nacknowledgements = [{ id = "a", text = " " }]\n'
        assert key_of(text) == "confirmation.acknowledgements[0].text"

    def test_acknowledgement_id_not_a_name(self) -> None:
        """Ids are lower-case names, since hosts send them back."""
        text = MINIMAL + '[confirmation]\nacknowledgements = [{ id = "Lose It", text = "x" }]\n'
        assert key_of(text) == "confirmation.acknowledgements[0].id"

    def test_prerequisite_of_the_wrong_type(self) -> None:
        """Prerequisites are names, not numbers."""
        assert key_of(MINIMAL + "prerequisites = [1]\n") == "prerequisites[0]"

    def test_prerequisite_listed_twice(self) -> None:
        """A check named twice is a mistake in the file."""
        assert key_of(MINIMAL + 'prerequisites = ["port_outs", "port_outs"]\n') == "prerequisites[1]"

    def test_permission_naming_an_unknown_relation(self) -> None:
        """Only owner, member, support and system exist."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(smrtphone_with('confirm = ["owner"]', 'confirm = ["owner", "admin"]'))
        assert str(caught.value) == (
            "permissions.confirm: unknown relation 'admin'; expected owner, member, support or system"
        )

    def test_permission_naming_an_unknown_action(self) -> None:
        """An action that is not a command is named."""
        assert key_of(MINIMAL + '[permissions]\ndelete_everything = ["owner"]\n') == (
            "permissions.delete_everything"
        )

    def test_permission_for_the_systems_purge(self) -> None:
        """``purge`` is the system's own step, not something a policy grants."""
        assert key_of(MINIMAL + '[permissions]\npurge = ["owner"]\n') == "permissions.purge"

    def test_permission_listing_a_relation_twice(self) -> None:
        """A relation listed twice is a mistake in the file."""
        assert key_of(MINIMAL + '[permissions]\nconfirm = ["owner", "owner"]\n') == "permissions.confirm"

    def test_permission_given_as_a_string(self) -> None:
        """A single relation is still written as a list."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(MINIMAL + '[permissions]\nconfirm = "owner"\n')
        assert str(caught.value) == (
            "permissions.confirm: expected a list of relations like ['owner'], got a string 'owner'"
        )

    def test_permissions_not_a_table(self) -> None:
        """``permissions`` maps actions to relations."""
        assert key_of(MINIMAL + 'permissions = ["owner"]\n') == "permissions"

    def test_bad_duration(self) -> None:
        """The message API.md promises, word for word."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(allclients_with('window = "3 months"', 'window = "-3"'))
        assert str(caught.value) == (
            "recovery.window: expected a duration like '90 days' or '3 months', got '-3'"
        )

    def test_duration_as_a_bare_number(self) -> None:
        """``window = 90`` leaves the unit unsaid."""
        assert key_of(allclients_with('window = "3 months"', "window = 90")) == "recovery.window"

    def test_duration_longer_than_a_century(self) -> None:
        """Windows are bounded."""
        assert key_of(allclients_with('window = "3 months"', 'window = "101 years"')) == "recovery.window"

    def test_category_both_purged_and_protected(self) -> None:
        """A category is erased or protected, never both."""
        text = smrtphone_with(
            'protected = ["crm_contacts", "crm_logs"]', 'protected = ["crm_logs", "agents"]'
        )
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(text)
        assert str(caught.value) == (
            "purge.protected[1]: 'agents' is both purged and protected; a category is one or the other"
        )

    def test_category_at_an_unknown_moment(self) -> None:
        """Categories are erased at cancel or at expiry."""
        text = smrtphone_with('{ name = "agents", at = "cancel" }', '{ name = "agents", at = "later" }')
        assert key_of(text) == "purge.categories[0].at"

    def test_category_at_expiry_without_a_window(self) -> None:
        """Without a recovery window there is no expiry to wait for."""
        text = smrtphone_with('{ name = "agents", at = "cancel" }', '{ name = "agents", at = "expiry" }')
        assert key_of(text) == "purge.categories[0].at"

    def test_category_without_its_moment(self) -> None:
        """``at`` is required, so nobody erases data by accident of a default."""
        text = smrtphone_with('{ name = "agents", at = "cancel" }', '{ name = "agents" }')
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(text)
        assert str(caught.value) == "purge.categories[0].at: is required"

    def test_category_with_an_unknown_key(self) -> None:
        """Keys inside list items are checked like any other."""
        text = smrtphone_with('{ name = "agents", at = "cancel" }', '{ name = "agents", when = "cancel" }')
        assert key_of(text) == "purge.categories[0].when"

    def test_category_named_twice(self) -> None:
        """Two entries for one category are a mistake in the file."""
        text = smrtphone_with('{ name = "call_flows", at = "cancel" }', '{ name = "agents", at = "cancel" }')
        assert key_of(text) == "purge.categories[1].name"

    def test_categories_not_tables(self) -> None:
        """Each category is a table with a name and a moment."""
        assert key_of(MINIMAL + '[purge]\ncategories = ["agents"]\n') == "purge.categories[0]"

    def test_identity_reuse_that_would_hand_over_a_restorable_identity(self) -> None:
        """With a window, the identity stays with the account until it is purged."""
        text = allclients_with('identity_reuse = "after_purge"', 'identity_reuse = "after_cancel"')
        assert key_of(text) == "identity_reuse"

    def test_on_cancel_unknown_effect(self) -> None:
        """Only the effects the service knows how to record are accepted."""
        assert key_of(MINIMAL + 'on_cancel = ["send_flowers"]\n') == "on_cancel[0]"

    def test_waiver_for_an_unknown_invariant(self) -> None:
        """A waiver names one of the invariants ``verify`` proves."""
        assert key_of(MINIMAL + 'waivers = ["owner_confirm"]\n') == "waivers[0]"

    def test_service_not_a_name(self) -> None:
        """Services are lower-case names."""
        assert key_of(MINIMAL + 'services = ["Messages"]\n') == "services[0]"

    def test_invalid_toml_names_the_key_on_the_line(self) -> None:
        """A value that does not parse is named by the key whose line it is on."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(smrtphone_with('mode = "required"', "mode = required"))
        assert caught.value.key == "survey.mode"
        assert caught.value.message == "expected valid TOML: Invalid value (at line 15, column 8)"

    def test_invalid_toml_inside_a_multiline_list(self) -> None:
        """A broken item of a list spanning lines names the list."""
        text = smrtphone_with('{ name = "agents", at = "cancel" }', '{ name = "agents", at = }')
        assert key_of(text) == "purge.categories"

    def test_broken_table_header(self) -> None:
        """An unclosed ``[survey`` names the table."""
        assert key_of(smrtphone_with("[survey]", "[survey")) == "survey"

    def test_duplicate_key(self) -> None:
        """TOML forbids a key twice; the second one is named."""
        assert key_of(MINIMAL + 'name = "again"\n') == "name"

    def test_integer_with_thousands_of_digits(self) -> None:
        """Python's own limit on integer parsing becomes a ``PolicyError``, not a ``ValueError``."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(MINIMAL + "version = 1" + "0" * 5000 + "\n")
        assert caught.value.message.startswith("expected valid TOML: Exceeds the limit (4300 digits)")

    def test_values_nested_too_deeply(self) -> None:
        """Deep nesting becomes a ``PolicyError``, not a ``RecursionError``."""
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(MINIMAL + "waivers = " + "[" * 5000 + "]" * 5000 + "\n")
        assert str(caught.value) == "expected valid TOML: values are nested too deeply"

    def test_non_utf8_bytes_name_the_key(self) -> None:
        """A Latin-1 byte in a value is refused, naming the key on its line."""
        data = SMRTPHONE_TOML.encode("utf-8").replace(b'"CONFIRM"', b'"CONFIRM\xe9"')
        with pytest.raises(PolicyError) as caught:
            policy_from_bytes(data)
        assert str(caught.value) == (
            "confirmation.token: expected UTF-8 text, got the byte b'\\xe9' at line 19 "
            "(invalid continuation byte); save the file as UTF-8"
        )

    def test_non_utf8_file_through_load(self, tmp_path: Path) -> None:
        """``Policy.load`` reads bytes, so an encoding problem is a ``PolicyError`` too."""
        path = tmp_path / "latin1.toml"
        path.write_bytes('name = "café"\n'.encode("latin-1"))
        with pytest.raises(PolicyError) as caught:
            Policy.load(path)
        assert caught.value.key == "name"

    def test_control_character_in_the_file(self) -> None:
        """Raw control characters are invalid TOML."""
        assert key_of(MINIMAL + 'description = "a\x01b"\n') == "description"

    def test_python_values_of_the_wrong_shape_name_the_key(self) -> None:
        """Built in Python, a list given as a number is named like in a file."""
        with pytest.raises(PolicyError) as caught:
            Policy(name="x", prerequisites=5)  # type: ignore[arg-type]
        assert str(caught.value) == "prerequisites: expected a list, got 5"


class TestReading:
    def test_minimal_file_gives_the_defaults(self) -> None:
        """Absent keys mean the documented defaults."""
        assert Policy.from_toml(MINIMAL) == Policy(name="tiny")

    def test_absent_action_in_a_permissions_table_is_granted_to_nobody(self) -> None:
        """Once ``[permissions]`` is written, an action left out is permitted to nobody."""
        policy = Policy.from_toml(MINIMAL + '[permissions]\nconfirm = ["owner"]\n')
        assert policy.permissions[Action.CONFIRM] == frozenset({Relation.OWNER})
        assert policy.permissions[Action.RESTORE] == frozenset()

    def test_byte_order_mark_and_crlf_are_accepted(self, tmp_path: Path) -> None:
        """Files saved by Windows editors read the same."""
        path = tmp_path / "windows.toml"
        path.write_bytes(b"\xef\xbb\xbf" + SMRTPHONE_TOML.replace("\n", "\r\n").encode("utf-8"))
        assert Policy.load(path) == policies.SMRTPHONE

    def test_unreadable_file_is_an_os_error(self, tmp_path: Path) -> None:
        """A missing file is not a policy problem."""
        with pytest.raises(FileNotFoundError):
            Policy.load(tmp_path / "missing.toml")

    def test_from_toml_takes_text(self) -> None:
        """Handing bytes to ``from_toml`` is a programming error."""
        with pytest.raises(TypeError, match="takes the file's text, got bytes"):
            Policy.from_toml(b'name = "x"')  # type: ignore[arg-type]


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [policies.SMRTPHONE, policies.ALLCLIENTS], ids=["smrtphone", "allclients"])
def test_builtins_round_trip(policy: Policy) -> None:
    """The canonical TOML of each built-in reads back as the same policy."""
    assert Policy.from_toml(policy.to_toml()) == policy


def test_shipped_files_equal_their_canonical_form() -> None:
    """The hand-written files mean exactly what their canonical form says."""
    assert Policy.from_toml(SMRTPHONE_TOML).to_toml() == policies.SMRTPHONE.to_toml()
    assert Policy.from_toml(ALLCLIENTS_TOML).to_toml() == policies.ALLCLIENTS.to_toml()


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
_LINE = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=20
).filter(lambda s: s == s.strip() and s.isprintable())
_PROSE = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"], include_characters="\n\t"),
    max_size=40,
)
_UNITS = {"days": 36_600, "weeks": 5_228, "months": 1_180, "years": 100}
# A name in braces is a token placeholder, and only {account_id} is one (test_closure_features)
_TOKENS = _LINE.filter(lambda s: re.search(r"\{ *[A-Za-z_][A-Za-z0-9_ .-]*\}", s) is None)


@st.composite
def durations(draw: st.DrawFn) -> Duration:
    unit = draw(st.sampled_from(sorted(_UNITS)))
    return Duration(draw(st.integers(1, _UNITS[unit])), unit)


@st.composite
def valid_policies(draw: st.DrawFn) -> Policy:
    """Any policy the validator accepts, drawn over every part of ``Policy``."""
    mode = draw(st.sampled_from(["required", "optional", "off"]))
    others = draw(
        st.lists(st.sampled_from([SurveyOutcome.KEEP_ACCOUNT, SurveyOutcome.BOOK_MEETING]), unique=True)
    )
    with_cancel = mode != "off" or draw(st.booleans())
    outcomes = draw(st.permutations([*others, SurveyOutcome.CANCEL] if with_cancel else others))
    window = draw(st.none() | durations())
    names = draw(st.lists(_NAMES, unique=True, max_size=8))
    split = draw(st.integers(0, len(names)))
    categories = tuple(
        PurgeCategory(name, draw(st.sampled_from(["cancel", "expiry"] if window else ["cancel"])))
        for name in names[:split]
    )
    permissions = {
        action: draw(st.frozensets(st.sampled_from(list(Relation))))
        for action in draw(st.lists(st.sampled_from(ACTIONS_WITH_PERMISSIONS), unique=True))
    }
    reuse = ["after_purge", "never"] if window else ["after_purge", "never", "after_cancel"]
    return Policy(
        name=draw(_LINE),
        version=draw(st.integers(1, 2**40)),
        description=draw(_PROSE),
        survey=SurveyPolicy(mode, tuple(outcomes)),
        confirmation=ConfirmationPolicy(
            draw(st.none() | _TOKENS),
            tuple(
                Acknowledgement(ack_id, draw(_PROSE.filter(str.strip)))
                for ack_id in draw(st.lists(_NAMES, unique=True, max_size=4))
            ),
        ),
        prerequisites=tuple(draw(st.lists(_NAMES, unique=True, max_size=3))),
        permissions=permissions,
        recovery=RecoveryPolicy(window),
        purge=PurgePolicy(categories, tuple(names[split:])),
        on_cancel=tuple(draw(st.lists(st.sampled_from(ON_CANCEL_EFFECTS), unique=True))),
        identity_reuse=draw(st.sampled_from(reuse)),
        services=tuple(draw(st.lists(_NAMES, unique=True, max_size=3))),
        waivers=tuple(draw(st.lists(st.sampled_from(INVARIANTS), unique=True))),
    )


@given(valid_policies())
@settings(max_examples=300)
def test_generated_policies_round_trip(policy: Policy) -> None:
    """``from_toml(to_toml(p)) == p`` for any valid policy, whatever its texts contain."""
    assert Policy.from_toml(policy.to_toml()) == policy


# -- mutated files --------------------------------------------------------------------------

_VALUES = st.sampled_from(
    [
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "inf",
        '""',
        '"   "',
        '"x"',
        '"CONFIRM "',
        '"3 months"',
        '"0 days"',
        '"101 years"',
        "[]",
        '["owner"]',
        '["owner", "owner"]',
        '["stranger"]',
        "{}",
        '{ name = "agents", at = "expiry" }',
        '{ id = "a", text = "b" }',
        "1979-05-27T07:32:00Z",
        '"crm_contacts"',
        '["crm_contacts"]',
        '"after_cancel"',
        '["owner_confirms"]',
        '"optional"',
        '"off"',
        '["keep_account"]',
        "[1, 2]",
    ]
)
_NOISE = st.characters(codec="utf-8") | st.sampled_from(
    ["\x00", "\x7f", "\r", "\t", "\u2028", "\ufeff", '"', "[", "]", "=", "#", "\\"]
)


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A built-in policy file after a few random edits, as bytes."""
    lines = draw(st.sampled_from([SMRTPHONE_TOML, ALLCLIENTS_TOML])).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(
            st.sampled_from(
                ["delete", "duplicate", "replace", "swap", "value", "noise", "retype", "truncate", "comment"]
            )
        )
        line = lines[index]
        if kind == "delete" and len(lines) > 1:
            del lines[index]
        elif kind == "duplicate":
            lines.insert(draw(st.integers(0, len(lines))), line)
        elif kind == "replace":
            lines[index] = lines[draw(st.integers(0, len(lines) - 1))]
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], line
        elif kind == "value" and "=" in line:
            lines[index] = line.split("=", 1)[0] + "= " + draw(_VALUES)
        elif kind == "noise":
            at = draw(st.integers(0, len(line)))
            lines[index] = line[:at] + draw(st.text(_NOISE, min_size=1, max_size=3)) + line[at:]
        elif kind == "retype":
            lines[index] = re.sub(r'"[^"]*"', draw(_VALUES), line, count=1)
        elif kind == "truncate":
            lines[index] = line[: draw(st.integers(0, len(line)))]
        elif kind == "comment":
            lines[index] = "# " + line
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # now and then, bytes that are not UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe9"])) + data[at:]
    return data


@given(mutated_files())
@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_files_give_a_policy_or_a_policy_error(data: bytes) -> None:
    """Whatever the edit, reading gives a valid policy (which builds a machine and round-trips)
    or a ``PolicyError`` with a message; never another exception."""
    error: PolicyError | None = None
    try:
        policy = policy_from_bytes(data)
    except PolicyError as exc:
        error = exc
    if error is not None:
        assert error.message != ""
        assert str(error).endswith(error.message)
        return
    assert Policy.from_toml(policy.to_toml()) == policy
    assert State.ACTIVE in PolicyMachine(policy).reachable_states


# -- the reference page ---------------------------------------------------------------------


def test_every_key_the_reader_accepts_is_documented() -> None:
    """``docs/policy-files.md`` documents each key in backticks, so the page cannot drift."""
    page = DOCS.read_text(encoding="utf-8")
    missing = [key for key in KEYS if f"`{key}`" not in page]
    assert missing == []


def test_documented_example_is_a_valid_policy() -> None:
    """The complete example on the reference page reads without error."""
    page = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) >= 1
    for block in blocks:
        assert isinstance(Policy.from_toml(block), Policy)


class TestEveryError:
    """A file with several problems: one PolicyError reading as the first, listing them all."""

    BAD = """
name = "bad"
colour = 1
[survey]
mode = "sometimes"
[confirmation]
token = "DELETE {acount}"
[recovery]
reminders = ["7 days", "1 day"]
[purge]
categories = [{ name = "Contacts", at = "cancel" }, { name = "files", at = "expiry" }]
on_hold = "forever"
"""

    def test_every_problem_with_its_key(self) -> None:
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(self.BAD)
        assert [e.key for e in caught.value.errors] == [
            "colour",
            "survey.mode",
            "confirmation.token",
            "purge.categories[0].name",
            "purge.categories[1].at",
            "purge.on_hold",
            "recovery.reminders[0]",
            "recovery.reminders[1]",
        ]
        assert str(caught.value) == str(caught.value.errors[0])

    def test_a_part_that_cannot_be_read_brings_no_follow_up_errors(self) -> None:
        """recovery.window does not parse: the expiry category is not blamed for the missing window."""
        text = (
            'name = "x"\n[recovery]\nwindow = "soon"\n'
            '[purge]\ncategories = [{ name = "files", at = "expiry" }]\n'
        )
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(text)
        assert [e.key for e in caught.value.errors] == ["recovery.window"]

    def test_one_problem_is_its_own_list(self) -> None:
        with pytest.raises(PolicyError) as caught:
            Policy(name="x", version=0)
        assert caught.value.errors == (caught.value,)

"""The ``account-lifecycle`` command line, run as a user runs it: a subprocess of
``python -m account_lifecycle``, checking stdout, stderr and the exit code of every path."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from account_lifecycle import policies
from account_lifecycle.diagram import draw

SMRTPHONE_TOML = policies.path("smrtphone").read_text(encoding="utf-8")
ALLCLIENTS_TOML = policies.path("allclients").read_text(encoding="utf-8")
CONFIRMED_AT = "2026-01-31T12:00:00Z"
SP_ACKS = ["--ack", "unported_numbers_lost", "--ack", "data_permanently_deleted", "--ack", "no_credit_refund"]


#: The identity key the console reads from its environment (``ID:HEX``): a fixed test key.
TEST_KEY = "cli:" + "ab" * 32


def cli(
    *args: str, cwd: Path, extra_env: dict[str, str] | None = None, key: str | None = TEST_KEY
) -> subprocess.CompletedProcess[str]:
    """Run the command line in *cwd* with no ACCOUNT_LIFECYCLE_* settings from the environment
    but *extra_env* and the identity key (*key*; None for none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCOUNT_LIFECYCLE_")}
    if key is not None:
        env["ACCOUNT_LIFECYCLE_IDENTITY_KEYS"] = key
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "account_lifecycle", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert (result.returncode, result.stderr) == (0, ""), result
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one-line reason of a refused command: exit *code*, nothing on stdout, no traceback."""
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result.stderr.strip()


def policy_file(tmp_path: Path, text: str, name: str = "policy.toml") -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return name


# -- check --------------------------------------------------------------------------------------


class TestCheck:
    def test_valid_files_and_built_in_names(self, tmp_path: Path) -> None:
        """Each valid policy is reported with its label; exit 0."""
        name = policy_file(tmp_path, ALLCLIENTS_TOML)
        assert ok(cli("check", name, "smrtphone", cwd=tmp_path)) == (
            "policy.toml: ok (allclients@1)\nsmrtphone: ok (smrtphone@1)\n"
        )

    def test_malformed_file_names_the_key(self, tmp_path: Path) -> None:
        """A bad duration: exit 1, the key and what was expected on stderr."""
        name = policy_file(tmp_path, ALLCLIENTS_TOML.replace('window = "3 months"', 'window = "-3"'))
        assert refused(cli("check", name, cwd=tmp_path)) == (
            "policy.toml: recovery.window: expected a duration like '90 days' or '3 months', got '-3'"
        )

    def test_invalid_toml(self, tmp_path: Path) -> None:
        """Text that is not TOML names the key of the broken line."""
        name = policy_file(tmp_path, SMRTPHONE_TOML.replace('mode = "required"', "mode = required"))
        assert refused(cli("check", name, cwd=tmp_path)) == (
            "policy.toml: survey.mode: expected valid TOML: Invalid value (at line 15, column 8)"
        )

    def test_file_that_is_not_utf8(self, tmp_path: Path) -> None:
        """Latin-1 bytes are a refusal naming the key, not a crash."""
        (tmp_path / "latin1.toml").write_bytes('name = "café"\n'.encode("latin-1"))
        assert refused(cli("check", "latin1.toml", cwd=tmp_path)) == (
            "latin1.toml: name: expected UTF-8 text, got the byte b'\\xe9' at line 1 "
            "(invalid continuation byte); save the file as UTF-8"
        )

    def test_missing_file_is_exit_2(self, tmp_path: Path) -> None:
        """An unreadable file is a usage problem, exit 2."""
        assert refused(cli("check", "missing.toml", cwd=tmp_path), 2) == (
            "cannot read missing.toml: No such file or directory "
            "(a policy file, or a built-in: allclients or smrtphone)"
        )

    def test_directory_is_exit_2(self, tmp_path: Path) -> None:
        """A directory is not a readable policy file."""
        (tmp_path / "dir").mkdir()
        assert refused(cli("check", "dir", cwd=tmp_path), 2).startswith("cannot read dir: Is a directory")

    def test_several_files_exit_with_the_worst_code(self, tmp_path: Path) -> None:
        """Good files are reported on stdout, bad ones on stderr; the exit code is the worst."""
        bad = policy_file(tmp_path, 'name = "x"\nwaivers = ["nope"]\n', "bad.toml")
        result = cli("check", "smrtphone", bad, "missing.toml", cwd=tmp_path)
        assert result.returncode == 2
        assert result.stdout == "smrtphone: ok (smrtphone@1)\n"
        assert result.stderr.splitlines() == [
            "bad.toml: waivers[0]: unknown invariant 'nope'; expected one of owner_confirms, "
            "no_restore_after_window, purged_terminal, all_states_reachable, no_dead_end",
            "cannot read missing.toml: No such file or directory (a policy file, or a built-in: "
            "allclients or smrtphone)",
        ]

    def test_no_file_is_a_usage_error(self, tmp_path: Path) -> None:
        """``check`` needs at least one file."""
        result = cli("check", cwd=tmp_path)
        assert result.returncode == 2
        assert "Error: Missing argument 'POLICY...'." in result.stderr


# -- show, diagram --------------------------------------------------------------------------------


class TestShowAndDiagram:
    def test_show_explains_smrtphone(self, tmp_path: Path) -> None:
        """The policy in plain words, section by section."""
        out = ok(cli("show", "smrtphone", cwd=tmp_path))
        assert out.splitlines()[:4] == [
            "smrtphone, version 1",
            "  smrtPhone account cancellation: permanent, owner only, typed CONFIRM, numbers ported "
            "out first.",
            "",
            "Asking to cancel",
        ]
        for line in [
            "  A survey is required; its answers: keep the account, book a meeting or cancel.",
            '  They type exactly "CONFIRM": letters, case and spaces must match.',
            "    - no_credit_refund: I can no longer use any remaining credit, and there is no refund on "
            "remaining credit balances.",
            "  Confirming waits until these checks report nothing pending: port_outs.",
            "  Access to the account ends. Team members lose access. Remaining credit is forfeited.",
            "  Never erased (protected): crm_contacts, crm_logs.",
            "  None: a cancelled account can never be restored; it is purged once its data is erased.",
            "  The same identity (e.g. e-mail) may open a fresh account as soon as this one is cancelled.",
        ]:
            assert line in out.splitlines()

    def test_show_explains_the_recovery_window(self, tmp_path: Path) -> None:
        """AllClients: who restores, for how long, and what is erased at the end."""
        lines = ok(cli("show", "allclients", cwd=tmp_path)).splitlines()
        assert "  Restorable for 3 months after cancellation, by support staff." in lines
        assert "  When the window ends, the rest is erased (backups) and the account is purged." in lines
        assert "  Services that can be cancelled alone, by the owner: messages." in lines

    def test_show_refuses_a_malformed_file(self, tmp_path: Path) -> None:
        """The same message as ``check``, exit 1."""
        name = policy_file(tmp_path, 'name = "x"\n[survey]\nmode = "maybe"\n')
        assert refused(cli("show", name, cwd=tmp_path)) == (
            "policy.toml: survey.mode: expected one of required, optional, off, got 'maybe'"
        )

    @pytest.mark.parametrize("fmt", ["mermaid", "dot"])
    def test_diagram_is_the_library_drawing(self, tmp_path: Path, fmt: str) -> None:
        """The command prints exactly what ``diagram.draw`` makes of the file."""
        name = policy_file(tmp_path, ALLCLIENTS_TOML)
        assert ok(cli("diagram", name, "--format", fmt, cwd=tmp_path)) == draw(policies.ALLCLIENTS, fmt)

    def test_diagram_defaults_to_mermaid(self, tmp_path: Path) -> None:
        """No --format: Mermaid."""
        assert ok(cli("diagram", "smrtphone", cwd=tmp_path)) == draw(policies.SMRTPHONE, "mermaid")

    def test_diagram_unknown_format(self, tmp_path: Path) -> None:
        """An unknown format is a usage error."""
        result = cli("diagram", "smrtphone", "--format", "png", cwd=tmp_path)
        assert result.returncode == 2
        assert "Invalid value for '--format': 'png' is not one of 'mermaid', 'dot'." in result.stderr


# -- verify, diff ---------------------------------------------------------------------------------

MEMBER_CONFIRMS = SMRTPHONE_TOML.replace('confirm = ["owner"]', 'confirm = ["member"]')


class TestVerify:
    @pytest.mark.parametrize("name", ["smrtphone", "allclients"])
    def test_builtins_hold(self, tmp_path: Path, name: str) -> None:
        """Every invariant holds; exit 0."""
        lines = ok(cli("verify", name, cwd=tmp_path)).splitlines()
        assert lines[0].startswith(f"verify {name}@1: ")
        assert lines[1:6] == [
            "  HOLDS  owner_confirms           nothing is purged unless the owner confirmed",
            "  HOLDS  no_restore_after_window  restore is accepted only while the recovery window is open",
            "  HOLDS  purged_terminal          nothing is accepted once the account is purged",
            "  HOLDS  all_states_reachable     every state the policy's machine can be in is reachable",
            "  HOLDS  no_dead_end              from every reachable situation, active or purged can "
            "still be reached",
        ]

    def test_failure_prints_the_counterexample_and_exits_1(self, tmp_path: Path) -> None:
        """``confirm = ["member"]``: owner_confirms fails with the path, actors' relations included."""
        name = policy_file(tmp_path, MEMBER_CONFIRMS)
        result = cli("verify", name, cwd=tmp_path)
        assert result.returncode == 1
        assert (
            "  FAILS  owner_confirms           nothing is purged unless the owner confirmed" in result.stdout
        )
        assert result.stderr.splitlines() == [
            "verify: smrtphone@1 breaks owner_confirms: nothing is purged unless the owner confirmed",
            "counterexample:",
            "  1. owner: request_cancellation  [active -> surveyed]",
            "  2. owner: submit_survey outcome=cancel  [surveyed -> pending_confirm]",
            "  3. member: confirm token=right acknowledgements=all prerequisites=clear  "
            "[pending_confirm -> cancelled]",
            "  4. system: purge the cancel-time categories (done)  [cancelled -> purged]",
            "  data is purged, but the cancellation was confirmed by member, not by the owner",
        ]

    def test_waiver_is_honoured_and_named(self, tmp_path: Path) -> None:
        """The same policy waiving owner_confirms passes, and says which waiver it used."""
        waived = MEMBER_CONFIRMS.replace("waivers = []", 'waivers = ["owner_confirms"]')
        name = policy_file(tmp_path, waived)
        lines = ok(cli("verify", name, cwd=tmp_path)).splitlines()
        assert "  WAIVED owner_confirms           nothing is purged unless the owner confirmed" in lines
        assert (
            "waiver honoured: owner_confirms (the policy waives it: data is purged, but the cancellation "
            "was confirmed by member, not by the owner)"
        ) in lines

    def test_dead_end(self, tmp_path: Path) -> None:
        """Nobody may confirm or withdraw: two invariants fail, both named on stderr."""
        stuck = ALLCLIENTS_TOML.replace('withdraw = ["owner"]', "withdraw = []").replace(
            'confirm = ["owner"]', "confirm = []"
        )
        result = cli("verify", policy_file(tmp_path, stuck), cwd=tmp_path)
        assert result.returncode == 1
        broken = [line for line in result.stderr.splitlines() if line.startswith("verify: ")]
        assert broken == [
            "verify: allclients@1 breaks all_states_reachable: every state the policy's machine can "
            "be in is reachable",
            "verify: allclients@1 breaks no_dead_end: from every reachable situation, active or "
            "purged can still "
            "be reached",
        ]

    def test_json_report(self, tmp_path: Path) -> None:
        """--json prints the report as data; the exit code still says whether it holds."""
        result = cli("verify", policy_file(tmp_path, MEMBER_CONFIRMS), "--json", cwd=tmp_path)
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert report["ok"] is False
        assert (report["invariants"][0]["id"], report["invariants"][0]["status"]) == (
            "owner_confirms",
            "fails",
        )
        path = report["invariants"][0]["counterexample"]["path"]
        assert [(m["actor"], m["action"]) for m in path] == [
            ("owner", "request_cancellation"),
            ("owner", "submit_survey"),
            ("member", "confirm"),
            ("system", "purge"),
        ]
        assert result.stderr == (
            "verify: smrtphone@1 breaks owner_confirms: nothing is purged unless the owner confirmed\n"
        )

    def test_verify_of_a_malformed_file(self, tmp_path: Path) -> None:
        """A file that does not read is refused before any proof."""
        name = policy_file(tmp_path, 'name = "x"\ncolour = 1\n')
        assert refused(cli("verify", name, cwd=tmp_path)).startswith("policy.toml: colour: unknown key")


class TestDiff:
    def test_builtins_differ(self, tmp_path: Path) -> None:
        """What each audience notices, then six behavioural differences, each a concrete path;
        exit 1 like diff(1)."""
        result = cli("diff", "smrtphone", "allclients", cwd=tmp_path)
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert lines[0] == "smrtphone@1 -> allclients@1: 27 changes (12 risky), 6 behavioural differences"
        assert lines[2:4] == [
            "customer notices:",
            "        the survey before cancelling: required -> optional  [survey.mode]",
        ]
        assert '  RISKY the text typed to confirm: "CONFIRM" -> none  [confirmation.token]' in lines
        assert "support notices:" in lines
        assert "auditor notices:" in lines
        behaviour = lines.index("behaviour:")
        assert lines[behaviour + 1 : behaviour + 4] == [
            "1. from active: owner: cancel_service service=messages",
            "     smrtphone@1 refuses it: InvalidTransition: cannot cancel_service from state active: "
            "policy smrtphone@1 has no such step",
            "     allclients@1 allows it: active",
        ]
        assert lines[-7:] == [
            "6. after",
            "     owner: request_cancellation  [active -> surveyed]",
            "     owner: submit_survey outcome=cancel  [surveyed -> pending_confirm]",
            "     owner: confirm token=right acknowledgements=all prerequisites=clear  "
            "[pending_confirm -> cancelled]",
            "   then system: purge the cancel-time categories (done)",
            "     smrtphone@1 allows it: purged",
            "     allclients@1 allows it: restorable",
        ]

    def test_same_policy(self, tmp_path: Path) -> None:
        """A file and the built-in it was copied from are the same: exit 0."""
        name = policy_file(tmp_path, SMRTPHONE_TOML)
        assert ok(cli("diff", name, "smrtphone", cwd=tmp_path)) == (
            "policy.toml and smrtphone are the same: nothing anyone would notice, the same behaviour\n"
        )

    def test_same_label_uses_file_names(self, tmp_path: Path) -> None:
        """Two versions of one policy with the same label are told apart by their file names."""
        name = policy_file(tmp_path, MEMBER_CONFIRMS, "member.toml")
        result = cli("diff", "smrtphone", name, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stdout.splitlines()[-2:] == [
            "     smrtphone refuses it: NotPermitted: user:member (member) may not confirm",
            "     member.toml allows it: cancelled",
        ]
        assert "  RISKY who may confirm: the owner -> team members  [permissions.confirm]" in result.stdout

    def test_json(self, tmp_path: Path) -> None:
        """--json lists the changes and the behavioural differences as data."""
        result = cli("diff", "smrtphone", "allclients", "--json", cwd=tmp_path)
        assert result.returncode == 1
        data = json.loads(result.stdout)
        assert (data["a"], data["b"], len(data["differences"])) == ("smrtphone@1", "allclients@1", 6)
        assert (data["same"], data["risky"], len(data["changes"])) == (False, True, 27)
        assert data["changes"][1] == {
            "text": 'the text typed to confirm: "CONFIRM" -> none',
            "keys": ["confirmation.token"],
            "audience": "customer",
            "risky": True,
        }

    def test_one_unreadable_file(self, tmp_path: Path) -> None:
        """An unreadable file is exit 2."""
        assert refused(cli("diff", "smrtphone", "nope.toml", cwd=tmp_path), 2).startswith(
            "cannot read nope.toml"
        )

    def test_fail_on_risky(self, tmp_path: Path) -> None:
        """--fail-on risky exits 0 for changes that are not risky, 1 for a risky one."""
        longer = ALLCLIENTS_TOML.replace('window = "3 months"', 'window = "6 months"')
        shorter = ALLCLIENTS_TOML.replace('window = "3 months"', 'window = "30 days"')
        policy_file(tmp_path, longer, "longer.toml")
        policy_file(tmp_path, shorter, "shorter.toml")
        safe = cli("diff", "allclients", "longer.toml", "--fail-on", "risky", cwd=tmp_path)
        assert safe.returncode == 0
        assert "        the recovery window: 3 months -> 6 months  [recovery.window]" in safe.stdout
        assert cli("diff", "allclients", "longer.toml", cwd=tmp_path).returncode == 1  # any is the default
        risky = cli("diff", "allclients", "shorter.toml", "--fail-on", "risky", cwd=tmp_path)
        assert risky.returncode == 1
        assert "  RISKY the recovery window: 3 months -> 30 days  [recovery.window]" in risky.stdout


# -- the group ------------------------------------------------------------------------------------


class TestGroup:
    def test_no_command_shows_help_and_exits_2(self, tmp_path: Path) -> None:
        """Nothing to do is a usage error."""
        result = cli(cwd=tmp_path)
        assert result.returncode == 2
        assert "Usage: account-lifecycle [OPTIONS] COMMAND [ARGS]..." in result.stderr + result.stdout

    def test_unknown_command(self, tmp_path: Path) -> None:
        """A typo is a usage error with click's message."""
        result = cli("verfy", "smrtphone", cwd=tmp_path)
        assert result.returncode == 2
        assert "Error: No such command 'verfy'." in result.stderr

    def test_help(self, tmp_path: Path) -> None:
        """--help lists every command."""
        out = ok(cli("--help", cwd=tmp_path))
        commands = [line.split()[0] for line in out.split("Commands:")[1].strip().splitlines()]
        assert commands == sorted(
            [
                "accounts",
                "check",
                "confirm",
                "demo",
                "diagram",
                "diff",
                "dismiss",
                "history",
                "migrate",
                "migrate-accounts",
                "open",
                "outbox",
                "receipt",
                "redeliver",
                "request",
                "restore",
                "show",
                "status",
                "studio",
                "survey",
                "sweep",
                "verify",
                "withdraw",
            ]
        )

    def test_version(self, tmp_path: Path) -> None:
        """--version prints the package version."""
        assert ok(cli("--version", cwd=tmp_path)) == "account-lifecycle, version 0.1.0\n"


class TestDemo:
    def test_demo_runs_both_policies(self, tmp_path: Path) -> None:
        """The README's main command: both flows, both audit chains verified."""
        out = ok(cli("demo", "--db", "demo.db", cwd=tmp_path))
        assert "  audit chain of sp-1 verifies" in out.splitlines()
        assert "  audit chain of ac-1 verifies" in out.splitlines()
        assert (tmp_path / "demo.db").exists()

    def test_demo_refuses_an_existing_file(self, tmp_path: Path) -> None:
        """It never writes into a database that is already there."""
        (tmp_path / "demo.db").write_bytes(b"")
        assert refused(cli("demo", "--db", "demo.db", cwd=tmp_path), 2) == (
            "demo: demo.db already exists; give a new file name"
        )


# -- the operator console -------------------------------------------------------------------------


def console(tmp_path: Path, *args: str, policy: str = "smrtphone") -> subprocess.CompletedProcess[str]:
    return cli(*args, "--db", "accounts.db", "--policy", policy, cwd=tmp_path)


# confirm and sweep erase: without --app the console refuses them (unless --dry-run), so the
# tests that go through a real confirm or sweep use this host, with fake purgers.
CONSOLE_HOST = """
import os
from datetime import datetime

from account_lifecycle import Lifecycle, ManualClock, Policy, policies
from account_lifecycle.testing import fake_purgers


def make(store):
    source = os.environ["CONSOLE_POLICY"]
    policy = policies.BUILTIN[source] if source in policies.BUILTIN else Policy.load(source)
    now = os.environ.get("CONSOLE_NOW")
    clock = ManualClock(datetime.fromisoformat(now)) if now else None
    checks = dict.fromkeys(policy.prerequisites, lambda account_id: ())
    purgers = fake_purgers(policy, items=0).values()
    return Lifecycle(policy, store=store, clock=clock, purgers=purgers, prerequisites=checks)
"""


def erasing(
    tmp_path: Path, *args: str, policy: str = "smrtphone", db: str = "accounts.db", now: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A console command run with --app (a host with fake purgers), on *policy*, at *now*."""
    (tmp_path / "console_host.py").write_text(CONSOLE_HOST, encoding="utf-8")
    env = {"CONSOLE_POLICY": policy, **({"CONSOLE_NOW": now} if now else {})}
    return cli(*args, "--db", db, "--app", "console_host:make", cwd=tmp_path, extra_env=env)


def state_of(result: subprocess.CompletedProcess[str]) -> str:
    record = json.loads(ok(result))
    assert isinstance(record["state"], str)
    return str(record["state"])


class TestConsoleIdentityKeys:
    def test_open_with_an_identity_needs_the_key_and_stores_its_digest(self, tmp_path: Path) -> None:
        """Without ACCOUNT_LIFECYCLE_IDENTITY_KEYS an open with --identity is refused and writes
        nothing; with it the file holds the digest, never the address; a malformed key is a
        usage error that does not quote the secret."""
        args = ("open", "k-1", "--owner", "u1", "--identity", "ann@example.com", "--db", "k.db")
        refused_open = cli(*args, "--policy", "allclients", cwd=tmp_path, key=None)
        assert refused_open.returncode != 0
        assert "identity_keys" in refused_open.stdout + refused_open.stderr
        ok(cli(*args, "--policy", "allclients", cwd=tmp_path))
        for name in ("k.db", "k.db-wal"):
            path = tmp_path / name
            if path.exists():
                assert b"ann@example.com" not in path.read_bytes()
        bad = cli(
            "status", "k-1", "--db", "k.db", "--policy", "allclients", cwd=tmp_path, key="cli:zz" + "1" * 62
        )
        assert bad.returncode == 2
        assert "ACCOUNT_LIFECYCLE_IDENTITY_KEYS, key 1" in bad.stderr
        assert "1" * 62 not in bad.stderr

    def test_migrate_turns_plain_identities_into_digests_only_with_the_key(self, tmp_path: Path) -> None:
        """A schema-2 file with a plain identity: ``migrate`` without the key is refused (exit
        2, the file unchanged, the value not quoted); with it the file is at version 6 and holds
        the digest under the console's key, not the address."""
        import sqlite3
        from contextlib import closing

        from account_lifecycle import IdentityKey, IdentityKeys, SQLiteStore
        from account_lifecycle.testing.store_contract import new_account

        path = tmp_path / "old.db"
        store = SQLiteStore(path)
        store.create(*new_account("old-1", identity="ann.old@example.com"))
        store.close()
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("DROP TABLE sealed_values")
            conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")

        refused_migrate = cli("migrate", "--db", "old.db", cwd=tmp_path, key=None)
        assert refused_migrate.returncode == 2
        assert "identity_keys" in refused_migrate.stderr
        assert "ann.old@example.com" not in refused_migrate.stderr
        assert b"ann.old@example.com" in path.read_bytes()

        assert ok(cli("migrate", "--db", "old.db", cwd=tmp_path)) == (
            "SQLite database 'old.db' migrated from schema version 2 to 6\n"
        )
        keys = IdentityKeys(IdentityKey("cli", bytes.fromhex(TEST_KEY.partition(":")[2])))
        migrated = SQLiteStore(path)
        try:
            assert migrated.get("old-1").identity == keys.digest("identity", "ann.old@example.com")
            migrated.checkpoint()
        finally:
            migrated.close()
        assert b"ann.old@example.com" not in path.read_bytes()


class TestConsoleSmrtphone:
    def test_the_whole_flow(self, tmp_path: Path) -> None:
        """Open, a member refused, survey, token and acknowledgements refused, confirm, receipt."""
        out = ok(console(tmp_path, "open", "sp-1", "--owner", "u1", "--member", "u2", "--identity", "a@b.c"))
        assert out == "sp-1: active (version 1)\n  owner u1; members u2\n"
        assert refused(console(tmp_path, "request", "sp-1", "--as", "user:u2")) == (
            "refused: user:u2 (member) may not request_cancellation"
        )
        assert refused(console(tmp_path, "request", "sp-1", "--as", "user:nobody")) == (
            "refused: user:nobody (no relation to the account) may not request_cancellation"
        )
        assert state_of(console(tmp_path, "request", "sp-1", "--as", "user:u1", "--json")) == "surveyed"
        assert state_of(
            console(tmp_path, "survey", "sp-1", "--as", "user:u1", "--outcome", "cancel", "--json")
        ) == ("pending_confirm")
        assert refused(
            console(
                tmp_path, "confirm", "sp-1", "--as", "user:u1", "--token", "confirm", *SP_ACKS, "--dry-run"
            )
        ) == (
            "refused: type exactly 'CONFIRM' to confirm (got 'confirm'); letters, case and spaces "
            "must match exactly"
        )
        assert refused(
            console(tmp_path, "confirm", "sp-1", "--as", "user:u1", "--token", "CONFIRM", "--dry-run")
        ) == (
            "refused: these acknowledgements are required first: unported_numbers_lost, "
            "data_permanently_deleted, no_credit_refund"
        )
        assert refused(console(tmp_path, "receipt", "sp-1")) == (
            "refused: cannot receipt from state pending_confirm: a receipt exists only once the "
            "account is purged"
        )
        record = json.loads(
            ok(
                erasing(
                    tmp_path, "confirm", "sp-1", "--as", "user:u1", "--token", "CONFIRM", *SP_ACKS, "--json"
                )
            )
        )
        assert record["state"] == "purged"
        assert sorted(record["purge"]) == [
            "agents",
            "billing_history",
            "call_flows",
            "call_recordings",
            "phone_numbers",
        ]
        receipt = json.loads(ok(console(tmp_path, "receipt", "sp-1", "--json")))
        assert [e["category"] for e in receipt["erased"]] == [
            "agents",
            "call_flows",
            "billing_history",
            "call_recordings",
            "phone_numbers",
        ]
        assert receipt["kept"] == ["crm_contacts", "crm_logs"]
        assert refused(console(tmp_path, "request", "sp-1", "--as", "user:u1")) == (
            "refused: cannot request_cancellation from state purged"
        )

    def test_history_and_a_tampered_chain(self, tmp_path: Path) -> None:
        """``history`` lists the events and verifies the chain; an edited event is exit 1."""
        ok(console(tmp_path, "open", "sp-1", "--owner", "u1"))
        ok(console(tmp_path, "request", "sp-1", "--as", "user:u1"))
        ok(console(tmp_path, "survey", "sp-1", "--as", "user:u1", "--outcome", "book_meeting"))
        lines = ok(console(tmp_path, "history", "sp-1")).splitlines()
        assert lines[0].split() == ["#", "┃", "at", "┃", "actor", "┃", "action", "┃", "state", "┃", "details"]
        assert [line.split("│")[3].strip() for line in lines[2:-1]] == [
            "open",
            "request_cancellation",
            "submit_survey",
            "meeting_requested",
        ]
        assert lines[-1] == "audit chain of sp-1 verifies (4 events)"
        events = json.loads(ok(console(tmp_path, "history", "sp-1", "--json")))
        assert [e["seq"] for e in events] == [1, 2, 3, 4]
        with sqlite3.connect(tmp_path / "accounts.db") as db:
            db.execute("UPDATE events SET body = replace(body, 'book_meeting', 'keep_account') WHERE seq = 3")
        result = console(tmp_path, "history", "sp-1")
        assert result.returncode == 1
        assert result.stderr.startswith("refused: audit history of 'sp-1' does not verify at event 3")

    def test_withdraw_and_status(self, tmp_path: Path) -> None:
        """Withdrawing returns to active; ``status --as`` lists what that actor may do now."""
        ok(console(tmp_path, "open", "sp-1", "--owner", "u1"))
        ok(console(tmp_path, "request", "sp-1", "--as", "user:u1"))
        assert state_of(console(tmp_path, "withdraw", "sp-1", "--as", "user:u1", "--json")) == "active"
        assert ok(console(tmp_path, "status", "sp-1", "--as", "user:u1")).splitlines()[-1] == (
            "  allowed now: add_member, change_identity, request_cancellation, transfer_ownership"
        )
        status = json.loads(ok(console(tmp_path, "status", "sp-1", "--as", "support:s1", "--json")))
        assert status["allowed_actions"] == []

    def test_confirm_for_a_withdrawn_request_is_refused(self, tmp_path: Path) -> None:
        """--request-id binds the confirm to the request it answers; an old one is refused."""
        ok(console(tmp_path, "open", "sp-1", "--owner", "u1"))
        first = json.loads(ok(console(tmp_path, "request", "sp-1", "--as", "user:u1", "--json")))
        ok(console(tmp_path, "withdraw", "sp-1", "--as", "user:u1"))
        ok(console(tmp_path, "request", "sp-1", "--as", "user:u1"))
        ok(console(tmp_path, "survey", "sp-1", "--as", "user:u1", "--outcome", "cancel"))
        stale = ["--token", "CONFIRM", *SP_ACKS, "--request-id", first["cancellation_id"]]
        assert refused(console(tmp_path, "confirm", "sp-1", "--as", "user:u1", *stale, "--dry-run")) == (
            "refused: cannot confirm from state pending_confirm: it answers cancellation request 'cr-2', "
            "but the open request is 'cr-4'; reload the page and confirm again"
        )
        fresh = ["--token", "CONFIRM", *SP_ACKS, "--request-id", "cr-4", "--json"]
        assert state_of(erasing(tmp_path, "confirm", "sp-1", "--as", "user:u1", *fresh)) == "purged"

    def test_refusal_as_json(self, tmp_path: Path) -> None:
        """With --json a refusal is a JSON object on stderr, still exit 1."""
        ok(console(tmp_path, "open", "sp-1", "--owner", "u1"))
        result = console(tmp_path, "restore", "sp-1", "--as", "support:s1", "--json")
        assert result.returncode == 1
        assert json.loads(result.stderr) == {
            "error": "InvalidTransition",
            "message": "refused: cannot restore from state active: policy smrtphone@1 has no such step",
        }


class TestConsoleAllclients:
    def test_recovery_window_and_sweep(self, tmp_path: Path) -> None:
        """Restorable for 3 months (clamped to 30 April), by support only; then swept to purged."""

        def at(moment: str, *args: str) -> subprocess.CompletedProcess[str]:
            if args[0] in ("confirm", "sweep"):
                return erasing(tmp_path, *args, policy="allclients", now=moment)
            return console(tmp_path, *args, "--now", moment, policy="allclients")

        ok(at(CONFIRMED_AT, "open", "ac-1", "--owner", "u1", "--member", "u2"))
        ok(at(CONFIRMED_AT, "request", "ac-1", "--as", "user:u1"))
        ok(at(CONFIRMED_AT, "survey", "ac-1", "--as", "user:u1", "--skip"))
        record = json.loads(ok(at(CONFIRMED_AT, "confirm", "ac-1", "--as", "user:u1", "--json")))
        assert (record["state"], record["restorable_until"]) == ("restorable", "2026-04-30T12:00:00.000000Z")
        assert refused(at("2026-02-01T00:00:00Z", "restore", "ac-1", "--as", "user:u1")) == (
            "refused: user:u1 (owner) may not restore"
        )
        assert (
            state_of(at("2026-04-30T11:59:59Z", "restore", "ac-1", "--as", "support:s1", "--json"))
            == "active"
        )
        ok(at("2026-05-01T12:00:00Z", "request", "ac-1", "--as", "user:u1"))
        ok(at("2026-05-01T12:00:00Z", "survey", "ac-1", "--as", "user:u1", "--skip"))
        ok(at("2026-05-01T12:00:00Z", "confirm", "ac-1", "--as", "user:u1"))
        assert ok(at("2026-06-01T12:00:00Z", "sweep")) == "purged: none\nrestorable: none\nfailed: none\n"
        assert refused(at("2026-08-01T12:00:00Z", "restore", "ac-1", "--as", "support:s1")) == (
            "refused: account 'ac-1' could be restored until 2026-08-01 12:00:00+00:00; "
            "it is now 2026-08-01 12:00:00+00:00"
        )
        report = json.loads(ok(at("2026-08-01T12:00:00Z", "sweep", "--json")))
        assert report == {"purged": ["ac-1"], "restorable": [], "failed": []}
        receipt = ok(at("2026-08-01T12:00:00Z", "receipt", "ac-1"))
        assert receipt.splitlines()[0] == "erasure receipt for ac-1 (allclients@1)"
        assert "  erased backups: 0 items at 2026-08-01T12:00:00.000000Z" in receipt.splitlines()


class TestConsoleUsageErrors:
    def test_actor_is_required(self, tmp_path: Path) -> None:
        """Commands taken by someone need --as."""
        result = console(tmp_path, "request", "sp-1")
        assert result.returncode == 2
        assert "Error: Missing option '--as'." in result.stderr

    def test_actor_must_parse(self, tmp_path: Path) -> None:
        """``--as`` is user:ID, support:ID or system."""
        result = console(tmp_path, "request", "sp-1", "--as", "admin")
        assert result.returncode == 2
        assert (
            "Invalid value for '--as': expected 'user:ID', 'support:ID' or 'system', got 'admin'"
            in result.stderr
        )

    def test_survey_needs_exactly_one_of_outcome_and_skip(self, tmp_path: Path) -> None:
        """Neither, or both, is a usage error."""
        assert refused(console(tmp_path, "survey", "sp-1", "--as", "user:u1"), 2) == (
            "error: give exactly one of --outcome or --skip"
        )

    def test_a_lifecycle_source_is_required(self, tmp_path: Path) -> None:
        """Without --policy or --app the console does not guess."""
        assert refused(cli("status", "sp-1", cwd=tmp_path), 2) == (
            "error: give --policy (allclients, smrtphone or a policy file), or --app module:factory"
        )

    def test_db_and_dsn_together(self, tmp_path: Path) -> None:
        """One store at a time."""
        result = cli(
            "status", "x", "--policy", "smrtphone", "--db", "a.db", "--dsn", "postgresql://h/d", cwd=tmp_path
        )
        assert refused(result, 2) == "error: give --db FILE or --dsn URL, not both"

    def test_unknown_policy_name(self, tmp_path: Path) -> None:
        """A policy that is neither a file nor a built-in is exit 2."""
        assert refused(console(tmp_path, "status", "x", policy="acme"), 2).startswith(
            "cannot read acme: No such file or directory"
        )

    def test_account_opened_under_another_policy(self, tmp_path: Path) -> None:
        """Driving a smrtPhone account with the AllClients rules is refused before anything is done."""
        ok(console(tmp_path, "open", "sp-1", "--owner", "u1"))
        assert refused(console(tmp_path, "request", "sp-1", "--as", "user:u1", policy="allclients"), 2) == (
            "error: account 'sp-1' is governed by policy smrtphone@1, not allclients@1; pass "
            "--policy smrtphone"
        )

    def test_policy_file_for_the_console(self, tmp_path: Path) -> None:
        """--policy also takes a policy file."""
        name = policy_file(tmp_path, ALLCLIENTS_TOML)
        assert ok(console(tmp_path, "open", "ac-1", "--owner", "u1", policy=name)).startswith("ac-1: active")

    def test_unknown_account_is_refused(self, tmp_path: Path) -> None:
        """An id that is not there is exit 1."""
        assert refused(console(tmp_path, "status", "nope")) == "refused: no account with id 'nope'"

    def test_account_opened_twice(self, tmp_path: Path) -> None:
        """Opening an existing id is refused."""
        ok(console(tmp_path, "open", "sp-1", "--owner", "u1"))
        assert refused(console(tmp_path, "open", "sp-1", "--owner", "u1")) == (
            "refused: an account with id 'sp-1' already exists"
        )

    def test_unknown_acknowledgement_id(self, tmp_path: Path) -> None:
        """An acknowledgement the policy does not ask for is bad input: exit 2."""
        ok(console(tmp_path, "open", "sp-1", "--owner", "u1"))
        ok(console(tmp_path, "request", "sp-1", "--as", "user:u1"))
        ok(console(tmp_path, "survey", "sp-1", "--as", "user:u1", "--outcome", "cancel"))
        assert refused(
            console(
                tmp_path,
                "confirm",
                "sp-1",
                "--as",
                "user:u1",
                "--token",
                "CONFIRM",
                "--ack",
                "x",
                "--dry-run",
            ),
            2,
        ) == (
            "error: unknown acknowledgement id(s) 'x'; this policy asks for unported_numbers_lost, "
            "data_permanently_deleted, no_credit_refund"
        )

    def test_bad_now(self, tmp_path: Path) -> None:
        """--now must be an ISO time."""
        assert refused(console(tmp_path, "status", "x", "--now", "tomorrow"), 2) == (
            "error: --now expects an ISO time like 2026-01-31T12:00:00Z, got 'tomorrow'"
        )

    def test_db_that_is_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not SQLite is unreadable: exit 2."""
        (tmp_path / "notes.txt").write_text("just some notes\n" * 100, encoding="utf-8")
        result = cli("status", "x", "--policy", "smrtphone", "--db", "notes.txt", cwd=tmp_path)
        assert refused(result, 2) == "error: cannot open SQLite database 'notes.txt': file is not a database"

    def test_db_in_a_missing_directory(self, tmp_path: Path) -> None:
        """A database that cannot be created is exit 2."""
        result = cli("status", "x", "--policy", "smrtphone", "--db", "no/such/dir/a.db", cwd=tmp_path)
        assert (
            refused(result, 2)
            == "error: cannot open SQLite database 'no/such/dir/a.db': unable to open database file"
        )

    def test_schema_without_dsn(self, tmp_path: Path) -> None:
        """--schema only means something for PostgreSQL."""
        assert refused(console(tmp_path, "status", "x", "--schema", "s"), 2) == (
            "error: --schema applies to --dsn (PostgreSQL) only"
        )

    def test_invalid_dsn(self, tmp_path: Path) -> None:
        """A DSN that does not parse is exit 2, without a traceback."""
        result = cli("status", "x", "--policy", "smrtphone", "--dsn", "not a dsn", cwd=tmp_path)
        assert refused(result, 2) == (
            "error: cannot use the PostgreSQL database: invalid PostgreSQL DSN (missing (...) after (...) "
            "in connection info string); expected postgresql://user@host/dbname or 'host=... dbname=...'"
        )  # libpq's quoted pieces are left out: one could be (part of) the password

    def test_settings_from_the_environment(self, tmp_path: Path) -> None:
        """ACCOUNT_LIFECYCLE_DB and ACCOUNT_LIFECYCLE_POLICY stand in for the options."""
        env = {**os.environ, "ACCOUNT_LIFECYCLE_DB": "env.db", "ACCOUNT_LIFECYCLE_POLICY": "allclients"}
        result = subprocess.run(
            [sys.executable, "-m", "account_lifecycle", "open", "ac-9", "--owner", "u1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (
            ok(result) == "ac-9: active (version 1)\n  owner u1; members none\n  service messages: active\n"
        )
        assert (tmp_path / "env.db").exists()


# -- --app: the host's own lifecycle -------------------------------------------------------------

HOST_APP = """
from datetime import timedelta

from account_lifecycle import Lifecycle, policies
from account_lifecycle.testing import FakePurger, fake_purgers


def make(store):
    policy = policies.ALLCLIENTS
    purgers = [
        FakePurger(
            c.name,
            items=7,
            detail="erased by the host",
            fail_when=c.name == "contacts",
            fail_with=lambda: RuntimeError("backups server unreachable"),
        )
        for c in policy.purge.categories
    ]
    return Lifecycle(policy, store=store, purgers=purgers, retry_backoff=timedelta(0))


def make_without_store():
    from account_lifecycle import MemoryStore

    policy = policies.ALLCLIENTS
    return Lifecycle(policy, store=MemoryStore(), purgers=fake_purgers(policy).values())


def missing_purgers(store):
    return Lifecycle(policies.SMRTPHONE, store=store)


def not_a_lifecycle(store):
    return "hello"
"""


class TestApp:
    def app(self, tmp_path: Path, *args: str, factory: str = "make") -> subprocess.CompletedProcess[str]:
        (tmp_path / "host_app.py").write_text(HOST_APP, encoding="utf-8")
        return cli(*args, "--db", "host.db", "--app", f"host_app:{factory}", cwd=tmp_path)

    def test_host_purgers_run_and_a_failure_is_retried_by_sweep(self, tmp_path: Path) -> None:
        """The host's purgers erase; one fails: confirm stands (exit 0), sweep reports it (exit 1)."""
        ok(self.app(tmp_path, "open", "ac-1", "--owner", "u1"))
        ok(self.app(tmp_path, "request", "ac-1", "--as", "user:u1"))
        ok(self.app(tmp_path, "survey", "ac-1", "--as", "user:u1", "--skip"))
        result = self.app(tmp_path, "confirm", "ac-1", "--as", "user:u1", "--json")
        assert result.returncode == 0
        record = json.loads(result.stdout)
        assert record["state"] == "cancelled"
        assert record["purge"]["contacts"]["error"] == "RuntimeError: backups server unreachable"
        assert record["purge"]["todos"]["items"] == 7
        sweep = self.app(tmp_path, "sweep")
        assert sweep.returncode == 1
        assert sweep.stdout == "purged: none\nrestorable: none\nfailed: ac-1\n"
        assert "sweep: purge failed for ac-1; a later sweep retries" in sweep.stderr

    def test_factory_without_arguments(self, tmp_path: Path) -> None:
        """A factory that builds its own store is called with no argument."""
        out = ok(self.app(tmp_path, "open", "m-1", "--owner", "u1", factory="make_without_store"))
        assert out.startswith("m-1: active (version 1)\n")

    def test_factory_that_fails_to_configure(self, tmp_path: Path) -> None:
        """A lifecycle missing its purgers is a configuration (usage) error."""
        assert refused(self.app(tmp_path, "status", "x", factory="missing_purgers"), 2).startswith(
            "error: --app host_app:missing_purgers: policy smrtphone@1 erases agents, billing_history"
        )

    def test_factory_returning_something_else(self, tmp_path: Path) -> None:
        """The factory must return a Lifecycle."""
        assert refused(self.app(tmp_path, "status", "x", factory="not_a_lifecycle"), 2) == (
            "error: --app host_app:not_a_lifecycle returned str, not a Lifecycle"
        )

    def test_missing_factory(self, tmp_path: Path) -> None:
        """A name the module does not define."""
        assert refused(self.app(tmp_path, "status", "x", factory="nope"), 2) == (
            "error: --app host_app:nope: host_app has no callable 'nope'"
        )

    def test_missing_module(self, tmp_path: Path) -> None:
        """A module that does not import."""
        result = cli("status", "x", "--app", "no_such_module:make", cwd=tmp_path)
        assert refused(result, 2) == (
            "error: --app no_such_module:make: cannot import 'no_such_module': No module named "
            "'no_such_module'"
        )

    def test_app_spec_without_a_colon(self, tmp_path: Path) -> None:
        """``--app`` is module:factory."""
        assert refused(cli("status", "x", "--app", "host_app", cwd=tmp_path), 2) == (
            "error: --app expects module:factory, got 'host_app'"
        )

    def test_app_with_policy(self, tmp_path: Path) -> None:
        """--app builds its own lifecycle; --policy would be ignored, so it is refused."""
        result = cli("status", "x", "--app", "host_app:make", "--policy", "smrtphone", cwd=tmp_path)
        assert refused(result, 2) == "error: --app builds its own lifecycle; drop --policy and --now"


# -- closure features: phases, token templates, fresh logins, previews, pending reasons ----------

PHASED_TOML = """
name = "phased"
[survey]
mode = "off"
[permissions]
request_cancellation = ["owner"]
withdraw = ["owner"]
confirm = ["owner"]
restore = ["owner", "support"]
[confirmation]
token = "DELETE {account_id}"
fresh_login = "15 minutes"
[recovery]
phases = [
  { length = "30 days", restore = ["owner", "support"] },
  { length = "30 days", restore = ["support"] },
]
[purge]
protected = ["crm"]
categories = [{ name = "contacts", at = "cancel" }, { name = "backups", at = "expiry" }]
"""

PENDING_APP = """
from account_lifecycle import Lifecycle, PendingItem, policies
from account_lifecycle.testing import fake_purgers


def port_outs(account_id):
    return [PendingItem("+15550100", why="it would be lost", fix="port it out in Settings > Numbers")]


def make(store):
    policy = policies.SMRTPHONE
    purgers = fake_purgers(policy, items=0).values()
    return Lifecycle(policy, store=store, purgers=purgers, prerequisites={"port_outs": port_outs})
"""


class TestClosureFeatures:
    def console(
        self, tmp_path: Path, *args: str, now: str = CONFIRMED_AT
    ) -> subprocess.CompletedProcess[str]:
        return cli(*args, "--db", "c.db", "--policy", "policy.toml", "--now", now, cwd=tmp_path)

    def test_show_explains_phases_templates_and_fresh_logins(self, tmp_path: Path) -> None:
        """show says who restores in each phase, what to type, and how fresh the login must be."""
        out = ok(cli("show", policy_file(tmp_path, PHASED_TOML), cwd=tmp_path))
        assert '  They type exactly "DELETE {account_id}": letters, case and spaces must match.\n' in out
        assert "  They must have logged in within the last 15 minutes.\n" in out
        assert (
            "  Restorable after cancellation in phases, one after the other:\n"
            "    1. for 30 days, by the owner or support staff\n"
            "    2. for 30 days, by support staff\n"
        ) in out

    def test_preview_confirm_and_a_refused_restore(self, tmp_path: Path) -> None:
        """The preview tells the dates; confirm needs the login and the rendered token; the owner
        is refused in the support-only phase with the phase named."""
        policy_file(tmp_path, PHASED_TOML)
        ok(self.console(tmp_path, "open", "acc-1", "--owner", "ann"))
        ok(self.console(tmp_path, "request", "acc-1", "--as", "user:ann"))
        preview = ok(self.console(tmp_path, "status", "acc-1", "--preview"))
        assert preview.splitlines() == [
            "acc-1: pending_confirm; if confirmed at 2026-01-31T12:00:00.000000Z:",
            '  type exactly "DELETE acc-1" to confirm',
            "  a login within the last 15 minutes is needed to confirm",
            "  at cancellation: access ends",
            "  contacts: to be erased 2026-01-31T12:00:00.000000Z (at confirm)",
            "  backups: to be erased 2026-04-01T12:00:00.000000Z (when the window ends)",
            "  crm: kept (protected)",
            "  restore phase 1: 2026-01-31T12:00:00.000000Z until 2026-03-02T12:00:00.000000Z, "
            "by owner, support",
            "  restore phase 2: 2026-03-02T12:00:00.000000Z until 2026-04-01T12:00:00.000000Z, by support",
            "  last moment to restore: before 2026-04-01T12:00:00.000000Z",
        ]
        data = json.loads(ok(self.console(tmp_path, "status", "acc-1", "--preview", "--json")))
        assert (data["hypothetical"], data["token"]) == (True, "DELETE acc-1")
        stale = self.console(
            tmp_path, "confirm", "acc-1", "--as", "user:ann", "--token", "DELETE acc-1",
            "--authenticated-at", "2026-01-31T11:00:00Z", "--dry-run",
        )  # fmt: skip
        assert refused(stale).startswith("refused: confirming needs a login within the last 15 minutes")
        ok(
            erasing(
                tmp_path, "confirm", "acc-1", "--as", "user:ann", "--token", "DELETE acc-1",
                "--authenticated-at", "2026-01-31T11:50:00Z",
                policy="policy.toml", db="c.db", now=CONFIRMED_AT,
            )
        )  # fmt: skip
        late = self.console(tmp_path, "restore", "acc-1", "--as", "user:ann", now="2026-03-10T00:00:00Z")
        assert refused(late).startswith(
            "refused: user:ann (owner) may not restore: recovery phase 2 of 2 runs from 2026-03-02T12:00:00Z"
        )
        out = ok(
            self.console(tmp_path, "restore", "acc-1", "--as", "support:desk", now="2026-03-10T00:00:00Z")
        )
        assert out.startswith("acc-1: active")

    def test_pending_items_show_why_and_fix(self, tmp_path: Path) -> None:
        """A host check's reasons reach the operator in the refusal."""
        (tmp_path / "pending_app.py").write_text(PENDING_APP, encoding="utf-8")

        def app(*args: str) -> subprocess.CompletedProcess[str]:
            return cli(*args, "--db", "p.db", "--app", "pending_app:make", cwd=tmp_path)

        ok(app("open", "sp-1", "--owner", "u1"))
        ok(app("request", "sp-1", "--as", "user:u1"))
        ok(app("survey", "sp-1", "--as", "user:u1", "--outcome", "cancel"))
        result = app("confirm", "sp-1", "--as", "user:u1", "--token", "CONFIRM", *SP_ACKS)
        assert refused(result) == (
            "refused: prerequisites still pending, complete them before confirming: port_outs: +15550100 "
            "(why: it would be lost; fix: port it out in Settings > Numbers)"
        )


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_console_on_postgresql(tmp_path: Path, pg_schema: tuple[str, str]) -> None:
    """--dsn runs the same commands on PostgreSQL (a throw-away schema on the test server)."""
    dsn, schema = pg_schema

    def pg(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, "--dsn", dsn, "--schema", schema, "--policy", "smrtphone", cwd=tmp_path)

    ok(cli("migrate", "--dsn", dsn, "--schema", schema, cwd=tmp_path))  # the console never migrates
    ok(pg("open", "pg-1", "--owner", "u1"))
    assert state_of(pg("request", "pg-1", "--as", "user:u1", "--json")) == "surveyed"
    assert refused(pg("request", "pg-1", "--as", "user:u1")) == (
        "refused: cannot request_cancellation from state surveyed"
    )
    assert ok(pg("history", "pg-1")).splitlines()[-1] == "audit chain of pg-1 verifies (2 events)"


# -- migrate-accounts: policy versions ------------------------------------------------------------

VERSIONS_APP = """
from account_lifecycle import Lifecycle, Policy, PolicyRegistry, policies
from account_lifecycle.testing import fake_purgers

V1 = policies.ALLCLIENTS
V2 = Policy.from_toml(
    V1.to_toml()
    .replace("version = 1", "version = 2")
    .replace('restore = ["support"]', 'restore = ["owner", "support"]')
    .replace(
        'window = "3 months"',
        'phases = [{ length = "30 days", restore = ["owner", "support"] },'
        ' { length = "3 months", restore = ["support"] }]',
    )
)


def _lifecycle(store, current):
    return Lifecycle(
        PolicyRegistry([V1, V2], current=current), store=store, purgers=fake_purgers(V1).values()
    )


def v1(store):
    return _lifecycle(store, "allclients@1")


def v2(store):
    return _lifecycle(store, "allclients@2")
"""


class TestMigrateAccounts:
    def run(self, tmp_path: Path, *args: str, factory: str = "v2") -> subprocess.CompletedProcess[str]:
        (tmp_path / "versions_app.py").write_text(VERSIONS_APP, encoding="utf-8")
        return cli(*args, "--db", "v.db", "--app", f"versions_app:{factory}", cwd=tmp_path)

    def test_plan_dry_run_refusal_and_apply(self, tmp_path: Path) -> None:
        for account in ("ac-1", "ac-2"):
            assert self.run(tmp_path, "open", account, "--owner", "u-1", factory="v1").returncode == 0
        for step in (("request",), ("survey", "--skip"), ("confirm",)):
            done = self.run(tmp_path, step[0], "ac-1", *step[1:], "--as", "user:u-1", factory="v1")
            assert done.returncode == 0, done.stderr

        plan = self.run(tmp_path, "migrate-accounts", "--from", "allclients@1", "--to", "allclients@2")
        assert plan.returncode == 0, plan.stderr
        assert plan.stdout.startswith("migrate allclients@1 -> allclients@2: 2 accounts\nactive: 1 account\n")
        assert "restorable: 1 account\n" in plan.stdout
        assert "the recovery window: 3 months -> 2 phases: 30 days then 3 months" in plan.stdout
        assert plan.stdout.endswith("dry run: nothing was written (pass --apply to migrate)\n")
        before = self.run(tmp_path, "history", "ac-1", "--json").stdout
        assert '"allclients@1"' in before
        assert '"allclients@2"' not in before  # a dry run writes nothing

        both = self.run(
            tmp_path,
            "migrate-accounts",
            "--from",
            "allclients@1",
            "--to",
            "allclients@2",
            "--apply",
            "--dry-run",
        )
        assert both.returncode == 2
        unknown = self.run(tmp_path, "migrate-accounts", "--from", "allclients@7", "--to", "allclients@2")
        assert unknown.returncode == 1
        assert "no policy version 'allclients@7'" in unknown.stderr

        applied = self.run(
            tmp_path, "migrate-accounts", "--from", "allclients@1", "--to", "allclients@2", "--apply"
        )
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.endswith("migrated: 2\n")
        history = self.run(tmp_path, "history", "ac-1", "--json")
        assert '"policy_migrated"' in history.stdout

        back = self.run(
            tmp_path, "migrate-accounts", "--from", "allclients@2", "--to", "allclients@1", "--apply"
        )
        assert back.returncode == 1
        assert "REFUSED (--allow shorten-window)" in back.stdout
        assert "nothing was written (to go ahead anyway: --allow shorten-window)" in back.stderr
        allowed = self.run(
            tmp_path,
            "migrate-accounts",
            "--from",
            "allclients@2",
            "--to",
            "allclients@1",
            "--apply",
            "--allow",
            "shorten-window",
            "--json",
        )
        assert allowed.returncode == 0, allowed.stderr
        report = json.loads(allowed.stdout)
        assert report["migrated"] == ["ac-1", "ac-2"]
        assert report["plan"]["refused"] == {}
        assert report["plan"]["allowed"] == ["shorten-window"]

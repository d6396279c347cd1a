"""``python -m account_lifecycle.studio POLICY.toml``: the studio without the CLI group."""

from account_lifecycle.studio.command import studio

if __name__ == "__main__":  # pragma: no cover - the entry point
    studio(prog_name="python -m account_lifecycle.studio")

"""Acme Notes: a tiny host application of account_lifecycle (its policy, purgers and store)."""

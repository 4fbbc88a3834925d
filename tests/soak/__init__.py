"""A seeded fault soak (issue 15): `python -m tests.soak --seed N --events N`, or
`make soak SEED=... EVENTS=...`; `tests/soak/test_soak.py` runs a CI-sized one."""

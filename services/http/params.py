"""What the HTTP API takes as an id, a position and a time: the ranges the stores can hold.

A value outside them is a 422 problem naming the field, never a 500 deeper down:
positions are 64-bit signed integers in both stores, and times are UTC years 1970 to
9998 (the rules add months and years to a time; year 9999 plus a lot's life overflows
Python's datetime, and an offset near year 1 or 9999 overflows the conversion to UTC).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

from services.ledger.domain.clock import in_ledger_range

# An identifier of 1 to 128 characters from A-Z, a-z, 0-9 and . _ : -, not only dots:
# `.` and `..` cannot be a path segment (a client or proxy normalises them away).
ID_PATTERN = r"^[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*$"
ID_MAX_LENGTH = 128

MAX_POSITION = 2**63 - 1  # SQLite's rowid and PostgreSQL's bigint

LedgerTime = Annotated[AwareDatetime, AfterValidator(in_ledger_range)]

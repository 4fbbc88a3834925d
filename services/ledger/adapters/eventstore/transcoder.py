"""The library's JSON transcoder, writing with orjson.

`eventsourcing`'s `JSONTranscoder` encodes every stored event with the standard
library's `json` module and a Python `default` hook: writing with orjson cut the CPU of
a Kafka batch by about 30% (360 to 249 µs per POS event, docs/BENCHMARKS.md). This
subclass encodes the same documents with orjson and keeps everything else of the
library's: the registered transcodings (a `datetime` is still
`{"_type_": "datetime_iso", "_data_": ...}`, a `Decimal` `decimal_str`) and the decoder.

orjson writes a `UUID` natively, as a plain string, and has no way to hand it to the
hook; so a state holding a `UUID` at its top level, or anything orjson refuses (an
integer beyond 64 bits, a key that is not a string), is written by the library's
encoder instead. The ledger's events carry no `UUID` below their top level
(`tests/unit/test_transcoder.py` checks every event class and that both encoders write
the same bytes).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder

# Datetimes and dataclasses go to the library's hook, as with the library's encoder.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class OrjsonTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict and UUID not in set(map(type, obj.values())):
            try:
                return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass  # the library's encoder says what it cannot write, or writes it
        return super().encode(obj)

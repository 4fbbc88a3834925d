"""What a currency allows (SPEC §8 "bad-money-precision"): its ISO 4217 minor unit, which
the POS contract checks amounts against and the read side rounds money to."""

from __future__ import annotations

from functools import lru_cache

import iso4217


@lru_cache(maxsize=512)
def minor_unit(currency: str) -> int:
    """Decimals the currency has (ISO 4217, from the iso4217 package; none: 4, the most
    the schema allows, e.g. for the funds and metals codes without a minor unit)."""
    try:
        exponent = iso4217.Currency(currency).exponent
    except ValueError:
        return 4
    return 4 if exponent is None else int(exponent)

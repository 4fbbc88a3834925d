"""The program's rules (SPEC §3), as one immutable value with a version.

A rule change is itself an event (`Program.RulesChanged`); every credit records the
version of the rules that produced it, so a refund can be explained with the rules
that granted the original points.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

DEFAULT_PROGRAM_FILE = Path(__file__).resolve().parents[3] / "config" / "program.toml"


@dataclass(frozen=True)
class TierStep:
    name: str
    threshold: Decimal
    multiplier: Decimal


@dataclass(frozen=True)
class ProgramRules:
    currency: str = "EUR"
    earn_rate: Decimal = Decimal("1")
    return_window_days: int = 14
    lot_expiry_months: int = 12
    tier_window_days: int = 365
    tier_grace_days: int = 30
    tier_ladder: tuple[TierStep, ...] = (
        TierStep("bronze", Decimal("0"), Decimal("1.0")),
        TierStep("silver", Decimal("1000"), Decimal("1.25")),
        TierStep("gold", Decimal("5000"), Decimal("1.5")),
    )
    small_money_amount: Decimal = Decimal("25.00")
    small_money_points: int = 2500
    goodwill_points_per_unit: int = 100
    trust_tester_grants: int = 3
    trust_tester_window_days: int = 90
    referral_reward_points: int = 500
    referral_cap_per_period: int = 5
    referral_cap_period_days: int = 30
    review_reward_points: int = 50
    adjustment_approval_limit: int = 1000
    ltv_lifetime_years: int = 5
    incident_resolution_hours: int = 48
    sweep_interval_seconds: int = 60  # maturation and expiry run by themselves (SPEC §8)
    max_future_skew_seconds: int = 300  # an event dated further ahead is refused
    welcome_points: int = 100  # SPEC §9: an enrolment's welcome lot, once per customer
    hold_seconds: int = 900  # SPEC §9: a checkout hold's default life
    park_days: int = 7  # a follow-up waits this long for its original (SPEC §8)
    version: int = field(default=0, compare=False)

    def to_document(self) -> dict[str, Any]:
        """A JSON-ready form: decimals as strings, the version left out. The settings added
        after rule documents were first stored (`LATER_SETTINGS`) appear only when they
        differ from their defaults, so the document of unchanged rules stays the one the
        store holds (and `from_document` reads documents without them)."""
        doc = asdict(self)
        doc.pop("version")
        for name, default in LATER_SETTINGS.items():
            if doc[name] == default:
                doc.pop(name)
        return _jsonable(doc)

    @classmethod
    def from_document(cls, doc: dict[str, Any], version: int = 0) -> ProgramRules:
        values = dict(doc)
        ladder = tuple(
            TierStep(s["name"], Decimal(str(s["threshold"])), Decimal(str(s["multiplier"])))
            for s in values.pop("tier_ladder", [asdict(s) for s in cls.tier_ladder])
        )
        for name in ("earn_rate", "small_money_amount"):
            if name in values:
                values[name] = Decimal(str(values[name]))
        rules = cls(tier_ladder=ladder, version=version, **values)
        rules.check()
        return rules

    def check(self) -> None:
        """Refuse a rule set that could not be applied consistently."""
        thresholds = [s.threshold for s in self.tier_ladder]
        if not self.tier_ladder or thresholds[0] != 0 or thresholds != sorted(set(thresholds)):
            raise ValueError("tier ladder must start at 0 and rise strictly")
        if self.earn_rate < 0 or any(s.multiplier <= 0 for s in self.tier_ladder):
            raise ValueError("earn rate and multipliers must be positive")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError("currency must be an ISO 4217 code")
        if self.sweep_interval_seconds < 1 or self.max_future_skew_seconds < 0:
            raise ValueError("sweep interval must be at least 1 s, the future skew not negative")
        if self.welcome_points < 0 or self.hold_seconds < 1:
            raise ValueError("welcome points must not be negative, a hold lasts at least 1 s")
        if self.park_days < 0:
            raise ValueError("park_days must not be negative")

    def with_version(self, version: int) -> ProgramRules:
        return ProgramRules.from_document(self.to_document(), version=version)


# Settings added after the first stored rule documents, with their defaults (SPEC §8).
LATER_SETTINGS: dict[str, Any] = {
    "sweep_interval_seconds": 60,
    "max_future_skew_seconds": 300,
    "welcome_points": 100,
    "hold_seconds": 900,
    "park_days": 7,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def file_hash(path: Path | str | None = None) -> str:
    """The program file's content hash: a restart records a new version only when it
    changed (SPEC §8 "The rule file and the API")."""
    return hashlib.sha256(Path(path or DEFAULT_PROGRAM_FILE).read_bytes()).hexdigest()


def load_rules_file(path: Path | str | None = None) -> ProgramRules:
    """Read a program file (TOML only) into rules; version 0 means 'not yet recorded'."""
    path = Path(path or DEFAULT_PROGRAM_FILE)
    if path.suffix.lower() in (".yaml", ".yml"):
        raise ValueError("the program file is TOML (config/program.toml); YAML is not read")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    tiers = raw.get("tiers", {})
    goodwill = raw.get("goodwill", {})
    referral = raw.get("referral", {})
    review = raw.get("review", {})
    adjustment = raw.get("adjustment", {})
    read_side = raw.get("read_side", {})
    enrolment = raw.get("enrolment", {})
    holds = raw.get("holds", {})
    doc: dict[str, Any] = {
        "currency": raw.get("currency", "EUR"),
        "earn_rate": raw.get("earn_rate", "1"),
        "return_window_days": raw.get("return_window_days", 14),
        "lot_expiry_months": raw.get("lot_expiry_months", 12),
        "tier_window_days": tiers.get("window_days", 365),
        "tier_grace_days": tiers.get("grace_days", 30),
        "small_money_amount": goodwill.get("small_money_amount", "25.00"),
        "small_money_points": goodwill.get("small_money_points", 2500),
        "goodwill_points_per_unit": goodwill.get("points_per_currency_unit", 100),
        "trust_tester_grants": goodwill.get("trust_tester_grants", 3),
        "trust_tester_window_days": goodwill.get("trust_tester_window_days", 90),
        "referral_reward_points": referral.get("reward_points", 500),
        "referral_cap_per_period": referral.get("cap_per_period", 5),
        "referral_cap_period_days": referral.get("cap_period_days", 30),
        "review_reward_points": review.get("reward_points", 50),
        "adjustment_approval_limit": adjustment.get("approval_limit_points", 1000),
        "ltv_lifetime_years": read_side.get("ltv_lifetime_years", 5),
        "incident_resolution_hours": read_side.get("incident_resolution_hours", 48),
        "sweep_interval_seconds": raw.get("sweep_interval_seconds", 60),
        "max_future_skew_seconds": raw.get("max_future_skew_seconds", 300),
        "welcome_points": enrolment.get("welcome_points", 100),
        "hold_seconds": holds.get("hold_seconds", 900),
        "park_days": raw.get("park_days", 7),
    }
    if "ladder" in tiers:
        doc["tier_ladder"] = tiers["ladder"]
    return ProgramRules.from_document(doc)

"""The ledger's campaign commands (SPEC §9): create, decide, end, read; and the
campaigns a batch of POS events earns under.

A batch loads the catalogue and every campaign it lists with one version query, and
reuses the campaigns it read before whose version is still the store's, reading only
the newer events of the others (a campaign's budget grows by one event per grant, and
its history is never read twice). Campaigns a batch granted from are saved with the
batch's accounts; when the batch loses a race they are forgotten, so its re-run starts
from the store's budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.infrastructure.store import versions_of
from services.ledger.application.simulate import Simulation, simulate
from services.ledger.domain import errors
from services.ledger.domain.campaigns.campaign import (
    Campaign,
    CampaignCatalogue,
    Terms,
    UnknownCampaign,
)
from services.ledger.domain.campaigns.engine import CampaignBook
from services.ledger.domain.clock import iso

T = TypeVar("T")


class CampaignAdmin:
    """Mixed into `Ledger`: what it provides is declared here for the type checker."""

    repository: Any
    recorder: Any
    mapper: Any
    _write_lock: threading.RLock

    if TYPE_CHECKING:  # provided by `Ledger`

        def rules_at(self, moment: datetime) -> Any: ...

        def refresh_rules(self) -> Any: ...

        def _append(self, *objs: Any) -> dict[UUID, int]: ...

        def _retrying(self, unit_of_work: Callable[[], T]) -> T: ...

    # ---- reading -------------------------------------------------------------------------
    def _campaign_cache(self) -> dict[UUID, Campaign]:
        if "_campaigns" not in self.__dict__:
            self._campaigns: dict[UUID, Campaign] = {}
        return self._campaigns

    def _catalogue(self) -> CampaignCatalogue | None:
        try:
            catalogue: CampaignCatalogue = self.repository.get(CampaignCatalogue.create_id())
        except AggregateNotFoundError:
            return None
        return catalogue

    def _fresh(self, campaign_id: UUID, version: int) -> Campaign:
        """The campaign at `version`: the cached one, brought forward by its newer events."""
        cache = self._campaign_cache()
        campaign = cache.get(campaign_id)
        if campaign is None or campaign.version > version:
            campaign = self.repository.get(campaign_id)
        elif campaign.version < version:
            for stored in self.recorder.select_events(campaign_id, gt=campaign.version):
                self.mapper.to_domain_event(stored).mutate(campaign)
        cache[campaign_id] = campaign
        return campaign

    def load_campaigns(self) -> list[Campaign]:
        """Every campaign, in creation order, as the store has it now. Under the write
        lock: the campaigns are the cached ones a batch grants from (never changed by two
        threads at once)."""
        with self._write_lock:
            return self._load_campaigns()

    def _load_campaigns(self) -> list[Campaign]:
        catalogue = self._catalogue()
        if catalogue is None:
            return []
        ids = [Campaign.create_id(c) for c in catalogue.campaign_ids]
        versions = versions_of(self.recorder, ids)
        return [self._fresh(i, versions[i]) for i in ids if i in versions]

    def campaign_book(self) -> CampaignBook:
        return CampaignBook(self._load_campaigns())  # the batch holds the write lock

    def forget_campaigns(self, book: CampaignBook | None) -> None:
        """After a lost race: the campaigns granted from hold budget never stored."""
        if book is not None:
            for campaign in book.touched.values():
                self._campaign_cache().pop(campaign.id, None)

    def campaign(self, campaign_id: str) -> Campaign:
        campaign_uuid = Campaign.create_id(campaign_id)
        with self._write_lock:
            versions = versions_of(self.recorder, [campaign_uuid])
            if campaign_uuid not in versions:
                raise UnknownCampaign(f"no campaign {campaign_id!r} is known")
            return self._fresh(campaign_uuid, versions[campaign_uuid])

    def simulate_campaign(self, terms: Terms, start: datetime, end: datetime) -> Simulation:
        """What `terms` would have granted over [start, end) of the stored history; stores
        nothing (`simulate.py`)."""
        terms.check()  # a bad condition or effect before anything is read
        self.refresh_rules()
        return simulate(self.recorder, terms, start, end, self.rules_at)

    # ---- commands --------------------------------------------------------------------------
    def _decide_campaign(self, campaign_id: str, decide: Callable[[Campaign], None]) -> Campaign:
        def unit_of_work() -> Campaign:
            campaign = self.campaign(campaign_id)
            try:
                decide(campaign)
                self._append(campaign)
            except BaseException:
                self._campaign_cache().pop(campaign.id, None)
                raise
            return campaign

        with self._write_lock:
            return self._retrying(unit_of_work)

    def create_campaign(
        self,
        terms: Terms,
        *,
        created_by: str,
        created_with_key: str | None,
        now: datetime,
    ) -> Campaign:
        """Record a campaign as awaiting a second person's approval. Its condition and
        effect are checked first (`InvalidCondition`, `InvalidEffect`); a campaign_id in
        use is a conflict."""
        terms.check()

        def unit_of_work() -> Campaign:
            if Campaign.create_id(terms.campaign_id) in versions_of(
                self.recorder, [Campaign.create_id(terms.campaign_id)]
            ):
                raise errors.EventIdConflict(
                    f"campaign {terms.campaign_id!r} already exists", field="campaign_id"
                )
            catalogue = self._catalogue() or CampaignCatalogue()
            campaign = Campaign(
                campaign_id=terms.campaign_id,
                name=terms.name,
                condition=terms.condition,
                effect=terms.effect,
                starts_at=iso(terms.starts_at),
                ends_at=iso(terms.ends_at),
                budget_points=terms.budget_points,
                per_customer_cap=terms.per_customer_cap,
                announced=terms.announced,
                created_by=created_by,
                created_with_key=created_with_key,
                created_at=iso(now),
            )
            catalogue.add(terms.campaign_id)
            self._append(campaign, catalogue)
            return campaign

        with self._write_lock:
            try:
                return self._retrying(unit_of_work)
            except IntegrityError:  # the same campaign_id created concurrently, 3 times over
                raise errors.EventIdConflict(
                    f"campaign {terms.campaign_id!r} already exists", field="campaign_id"
                ) from None

    def approve_campaign(
        self, campaign_id: str, *, approved_by: str, approver_key: str | None, now: datetime
    ) -> Campaign:
        return self._decide_campaign(
            campaign_id,
            lambda c: c.approve(approved_by=approved_by, approver_key=approver_key, now=now),
        )

    def reject_campaign(
        self,
        campaign_id: str,
        *,
        rejected_by: str,
        note: str | None,
        now: datetime,
        rejected_with_key: str | None = None,
    ) -> Campaign:
        return self._decide_campaign(
            campaign_id,
            lambda c: c.reject(
                rejected_by=rejected_by, note=note, now=now, rejected_with_key=rejected_with_key
            ),
        )

    def end_campaign(
        self, campaign_id: str, *, ended_by: str, now: datetime, ended_with_key: str | None = None
    ) -> Campaign:
        return self._decide_campaign(
            campaign_id,
            lambda c: c.end(ended_by=ended_by, now=now, ended_with_key=ended_with_key),
        )

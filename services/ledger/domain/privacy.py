"""Personal data under a key per customer, so that erasure keeps the books (SPEC §11).

Which fields are personal is declared ONCE, here, in two registries:

- `POS_PERSONAL_FIELDS`: per POS event type, the free-text fields of the document as the
  POS sent it (the intake record keeps the document, for audit);
- `PERSONAL_FIELDS`: per stored account event, the fields that carry them on.

A new personal field is one line in each (enrolment's `birthday`, for instance, is
`"enrolment": ("birthday",)` here and its event's name in `PERSONAL_FIELDS`).

A personal field is stored as a *sealed value*, one of:

    {"sealed": "<base64 of nonce || AES-256-GCM ciphertext>"}   written since issue 16
    {"plain": "<text>"}       read from a v1 event (stored before encryption, upcast)
    {"erased": true}          written for a customer already erased
    null                      the POS sent none

The ciphertext is bound to its customer (the associated data names the customer id), its
nonce is random at write time, and it is stored in the event, so a replay never
encrypts. Keys live in their own table (`services/infrastructure/keys.py`), never in an event, an
export or a message: deleting a customer's key makes every sealed value of theirs
unreadable, and the hash chain, which covers the stored ciphertext, still verifies.
Opening happens on the read side and at the API's edges (`reveal`); no key: `"erased"`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ERASED = "erased"  # what a personal field reads as once its customer is erased
KEY_BYTES = 32
NONCE_BYTES = 12

# POS event type -> its personal fields (free text a POS sends; SPEC §2).
POS_PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "review": ("comment",),
    "incident": ("description",),
    "refund": ("reason",),
    "enrolment": ("birthday",),
}

# Stored account event -> its personal fields (a goodwill's note is the rejecter's).
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "ReviewRecorded": ("comment",),
    "IncidentReported": ("description",),
    "GoodwillRejected": ("note",),
    "CustomerEnrolled": ("birthday",),
}

Sealed = dict[str, Any]


class Keyring(Protocol):
    """The customers' keys (`services/infrastructure/keys.py`). A key is None once the
    customer is erased; a customer with no row has no key yet."""

    def keys_for_writing(self, customer_ids: Iterable[str]) -> dict[str, bytes | None]:
        """Each customer's key, created where there is none (None: erased)."""

    def keys_for_reading(self, customer_ids: Iterable[str]) -> dict[str, bytes | None]:
        """Each customer's key; None for an erased customer or one with no key."""

    def erased(self, customer_ids: Iterable[str]) -> set[str]:
        """Which of these customers are erased."""

    def erase(self, customer_id: str) -> None:
        """Delete the customer's key for good (idempotent); no key is created again."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _aad(customer_id: str) -> bytes:
    return f"loyalty-ledger/personal/v1/{customer_id}".encode()


def seal(key: bytes | None, customer_id: str, text: str | None) -> Sealed | None:
    """The sealed value of `text` under the customer's key (None: the customer is erased)."""
    if text is None:
        return None
    if key is None:
        return {"erased": True}
    return _seal_with(AESGCM(key), customer_id, text)


def _seal_with(cipher: AESGCM, customer_id: str, text: str) -> Sealed:
    nonce = os.urandom(NONCE_BYTES)
    box = cipher.encrypt(nonce, text.encode("utf-8"), _aad(customer_id))
    return {"sealed": base64.b64encode(nonce + box).decode("ascii")}


def reveal(value: Any, key: bytes | None, customer_id: str, *, erased: bool) -> str | None:
    """The text of a stored personal field, or `"erased"`.

    `value` is a sealed value, or a plain string (a v1 event read raw, as the read side
    reads states). Old plaintext reads as itself until its customer is erased."""
    if value is None:
        return None
    if isinstance(value, str):
        return ERASED if erased else value
    if not isinstance(value, dict):
        return ERASED
    if "plain" in value:
        return ERASED if erased else str(value["plain"])
    token = value.get("sealed")
    if key is None or not isinstance(token, str):
        return ERASED
    try:
        raw = base64.b64decode(token)
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(customer_id)).decode()
    except (InvalidTag, ValueError):
        return ERASED


def upcast_plain(state: dict[str, Any], *names: str) -> None:
    """A v1 event's plaintext personal fields as sealed values' `plain` form (upcasters)."""
    for name in names:
        value = state.get(name)
        if isinstance(value, str):
            state[name] = {"plain": value}


class Sealer:
    """Seals one batch's personal fields: one key fetch (or creation) per customer per
    batch, for all of the batch's customers at once (`prepare`)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._keys: dict[str, bytes | None] = {}
        self._ciphers: dict[str, AESGCM] = {}  # a cipher's set-up costs half a seal

    def prepare(self, documents: Iterable[Mapping[str, Any]]) -> None:
        wanted = {
            doc["customer_id"]
            for doc in documents
            if any(doc.get(name) is not None for name in POS_PERSONAL_FIELDS.get(doc["type"], ()))
        }
        wanted -= self._keys.keys()
        if wanted:
            self._keys.update(self.keyring.keys_for_writing(wanted))

    def key(self, customer_id: str) -> bytes | None:
        if customer_id not in self._keys:
            self._keys.update(self.keyring.keys_for_writing([customer_id]))
        return self._keys[customer_id]

    def seal(self, customer_id: str, text: str | None) -> Sealed | None:
        if text is None:
            return None
        cipher = self._ciphers.get(customer_id)
        if cipher is None:
            key = self.key(customer_id)
            if key is None:
                return {"erased": True}
            cipher = self._ciphers[customer_id] = AESGCM(key)
        return _seal_with(cipher, customer_id, text)

    def open(self, customer_id: str, value: Any) -> str | None:
        """A stored personal field in plain text, for a write-side rule that needs one
        (a birthday for a campaign's `birthday_today`); `"erased"` once erased."""
        key = self.key(customer_id)
        return reveal(value, key, customer_id, erased=key is None)

    def document(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The POS document as the intake record keeps it: its personal fields sealed."""
        names = [n for n in POS_PERSONAL_FIELDS.get(doc["type"], ()) if doc.get(n) is not None]
        if not names:
            return dict(doc)
        return {**doc, **{n: self.seal(doc["customer_id"], doc[n]) for n in names}}


class Revealer:
    """Opens personal fields on the read side: one key look-up per customer, cached for
    the life of the revealer (one answer)."""

    def __init__(self, keyring: Keyring | None) -> None:
        self.keyring = keyring
        self._keys: dict[str, bytes | None] = {}
        self._erased: set[str] = set()

    def load(self, customer_ids: Iterable[str]) -> None:
        wanted = set(customer_ids) - self._keys.keys()
        if not wanted:
            return
        if self.keyring is None:  # a store without keys (a test's bare ledger): nothing
            self._keys.update(dict.fromkeys(wanted))
            return
        self._keys.update(self.keyring.keys_for_reading(wanted))
        self._erased |= self.keyring.erased(wanted)

    def field(self, customer_id: str, value: Any) -> str | None:
        self.load([customer_id])
        return reveal(
            value, self._keys[customer_id], customer_id, erased=customer_id in self._erased
        )

    def event(self, name: str, data: dict[str, Any], customer_id: str | None) -> dict[str, Any]:
        """The account event's fields with its personal fields opened (or `"erased"`)."""
        names = [n for n in PERSONAL_FIELDS.get(name, ()) if n in data]
        if not names:
            return data
        if customer_id is None:
            return {**data, **{n: ERASED for n in names if data[n] is not None}}
        return {**data, **{n: self.field(customer_id, data[n]) for n in names}}

    def document(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A POS document as the intake record kept it, its personal fields opened."""
        kind, customer_id = doc.get("type"), doc.get("customer_id")
        names = [n for n in POS_PERSONAL_FIELDS.get(str(kind), ()) if n in doc]
        if not names:
            return doc
        if not isinstance(customer_id, str):
            return {**doc, **{n: ERASED for n in names}}
        return {**doc, **{n: self.field(customer_id, doc[n]) for n in names}}

"""The write side's refusals as problem documents: a rule's `LedgerError` and the POS
contract's `ContractViolation`, the same shape over HTTP (`install`), in a batch's
results and in a Kafka dead letter."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from services.http.problems import problem_document, respond
from services.http.responses import OrjsonResponse
from services.ledger.adapters.contract import ContractViolation
from services.ledger.domain.errors import LedgerError


def ledger_error_document(error: LedgerError) -> dict[str, Any]:
    errors = [{"field": error.field, "message": error.detail}] if error.field else None
    return problem_document(error.status, error.slug, error.title, error.detail, errors=errors)


def contract_violation_document(violation: ContractViolation) -> dict[str, Any]:
    status = 413 if violation.problem_type == "payload-too-large" else 422
    if violation.problem_type == "malformed-json":
        status = 400
    errors = [{"field": e.field, "message": e.message} for e in violation.errors]
    return problem_document(
        status, violation.problem_type, violation.title, violation.detail, errors=errors or None
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def _ledger_error(_: Request, error: LedgerError) -> OrjsonResponse:
        return respond(ledger_error_document(error))

    @app.exception_handler(ContractViolation)
    async def _contract(_: Request, violation: ContractViolation) -> OrjsonResponse:
        return respond(contract_violation_document(violation))

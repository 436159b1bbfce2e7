"""The ledger: trial balance and accounts with their balances.

Every amount in the revenue cycle is a balanced journal entry; the trial balance shows
total debits = total credits (and that every entry balances). Account ids are
``<kind>`` or ``<kind>:<owner>`` (``payer_ar:payer-medicare``, ``patient_ar:<patient>``).

Roles: ``finance`` and ``admin`` (see :mod:`serving.routers.billing`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.billing.ledger import (
    Account,
    AccountKind,
    account_balance,
    balances,
    trial_balance,
)
from healthos_core.errors import NotFoundError
from serving.deps import SessionDep
from serving.routers.billing import BILLING_READERS, AsOfQuery, as_of_time
from serving.schemas.billing import AccountPublic, AccountsPublic, TrialBalancePublic

router = APIRouter(tags=["ledger"], dependencies=BILLING_READERS)

AccountId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=160,
        description='Ledger account id, e.g. "cash" or "payer_ar:payer-medicare"',
    ),
]


# Read helpers: they belong in ``healthos_core.billing.ledger`` (beside
# ``account_balance``); they live here until they move there, so the routes stay one call.


def get_account(
    session: Session, account: str, *, as_of: dt.datetime | None
) -> tuple[Account, Decimal]:
    """Return an account and its balance as of a time.

    Raises
    ------
    InvalidInputError
        ``account`` is not a ledger account id.
    NotFoundError
        No such account (accounts are made on first posting).
    """
    balance = account_balance(session, account, as_of=as_of)  # validates the id
    row = session.get(Account, account)
    if row is None:
        raise NotFoundError(f"ledger account {account} does not exist: nothing posted to it yet")
    return row, balance


def find_accounts(
    session: Session, *, kind: str | None, as_of: dt.datetime | None
) -> list[AccountPublic]:
    """Return every account (of one kind) with its balance, by id."""
    query = select(Account).order_by(Account.id)
    if kind is not None:
        query = query.where(Account.kind == kind)
    amounts = balances(session, kind=kind, as_of=as_of)
    return [
        AccountPublic.from_entity(a, balance=amounts.get(a.id, Decimal("0")))
        for a in session.scalars(query)
    ]


@router.get("/ledger/trial-balance", response_model=TrialBalancePublic)
def read_trial_balance(*, session: SessionDep, as_of: AsOfQuery = None) -> TrialBalancePublic:
    """Total debits and credits per currency, and whether the ledger balances."""
    when = as_of_time(as_of)
    return TrialBalancePublic.from_result(trial_balance(session, as_of=when), as_of=when)


@router.get("/accounts", response_model=AccountsPublic)
def read_accounts(
    *,
    session: SessionDep,
    kind: Annotated[AccountKind | None, Query(description="Only accounts of this kind")] = None,
    as_of: AsOfQuery = None,
) -> AccountsPublic:
    """List ledger accounts with their balances (on each account's normal side)."""
    accounts = find_accounts(
        session, kind=None if kind is None else kind.value, as_of=as_of_time(as_of)
    )
    return AccountsPublic(data=accounts, count=len(accounts))


@router.get("/accounts/{account_id}", response_model=AccountPublic)
def read_account(
    *, session: SessionDep, account_id: AccountId, as_of: AsOfQuery = None
) -> AccountPublic:
    """Read one ledger account and its balance."""
    account, balance = get_account(session, account_id, as_of=as_of_time(as_of))
    return AccountPublic.from_entity(account, balance=balance)

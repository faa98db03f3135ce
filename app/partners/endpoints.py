"""Partner records, keyed by the partner's own asset reference."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from app.auth import ReadScope
from app.deps import ReadsDep, SettingsDep, json_answer
from app.params import single_valued
from app.partners import queries
from app.partners.schemas import PartnerOut
from app.problems import problem_responses

# References are stored as Leap sent them (any length or characters), so any can be
# asked for; only NUL, which PostgreSQL text cannot hold, could never match.
STORABLE_REFERENCE = r"^[^\x00]+$"

router = APIRouter(
    prefix="/v1/partner-references", tags=["partners"], dependencies=[Depends(single_valued)]
)


@router.get(
    "/{partner_reference}",
    summary="A partner record",
    description="Connect-session and authorization history, and the meters attached.",
    response_model=PartnerOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_partner(
    partner_reference: Annotated[
        str,
        Path(
            min_length=1,
            max_length=65_536,
            pattern=STORABLE_REFERENCE,
            description="The partner's own reference (Connect refId), as Leap sent it",
            examples=["acme-site-0042"],
        ),
    ],
    reads: ReadsDep,
    settings: SettingsDep,
    _: ReadScope,
) -> Response:
    return json_answer(await queries.get_partner(reads, settings, partner_reference))

"""The Kyzo account as the API lists it: Get Agents and Get Campaigns.

Used by `validate` (does the configured agent and caller number exist?) and by the `agents`
and `campaigns` listings. Answers are read through `client.classify_listing`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from dialer import logs
from dialer.client import KyzoClient, Listing, ListingAnswer, classify_listing
from dialer.config import Settings
from dialer.errors import UserError

What = Literal["agents", "campaigns"]


@dataclass(frozen=True)
class AccountCheck:
    note: str  # what the preflight found, in a few words
    problems: list[str] = field(default_factory=list)  # each one makes `validate` exit 2


def fetch_listing(
    settings: Settings, what: What, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
) -> ListingAnswer:
    async def fetch() -> ListingAnswer:
        client = KyzoClient.for_settings(
            settings, settings.require_api_key(), timeout_s=timeout_s, transport=transport
        )
        async with client:
            answer = await (client.list_agents() if what == "agents" else client.list_campaigns())
        return classify_listing(answer)

    return asyncio.run(fetch())


def check_account(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> AccountCheck:
    """Ask Get Agents whether the configured agent and caller number exist."""
    if settings.api_key is None:
        return AccountCheck("not checked", ["KYZO_API_KEY is not set: export the API key, or use --offline"])
    timeout = min(10.0, settings.limits.request_timeout_s)
    answer = fetch_listing(settings, "agents", timeout_s=timeout, transport=transport)
    org = settings.api.organization_id
    match answer.kind:
        case Listing.UNREACHABLE:
            return AccountCheck(f"not reachable ({answer.detail}); agent not checked")
        case Listing.KEY_REJECTED:
            return AccountCheck("key rejected", [answer.detail])
        case Listing.NOT_FOUND:
            return AccountCheck("organization not found", [f"organization '{org}' was not found (404)"])
        case Listing.REFUSED:
            return AccountCheck(f"answered {answer.status}; agent not checked")
        case Listing.NOT_JSON:
            return AccountCheck("answered with a body that is not JSON; agent not checked")
        case Listing.NOT_A_LIST | Listing.OK:
            pass
    agents = {str(item.get("id")): item for item in answer.items}
    agent = settings.campaign.agent_id
    if agent not in agents:
        found = ", ".join(sorted(agents)) or "none"
        return AccountCheck(
            "agent not found", [f"agent '{agent}' is not in organization '{org}' (found: {found})"]
        )
    numbers = agents[agent].get("phoneNumberIds")
    number = settings.campaign.from_phone_number_id
    if isinstance(numbers, list) and number not in numbers:
        listed = ", ".join(map(str, numbers))
        return AccountCheck(
            "phone number not found",
            [f"from_phone_number_id '{number}' is not one of the agent's numbers ({listed})"],
        )
    return AccountCheck(f"organization, agent '{agent}' and phone number id '{number}' found")


def list_account(
    settings: Settings, what: What, transport: httpx.AsyncBaseTransport | None = None
) -> list[dict[str, Any]]:
    """Get Agents or Get Campaigns, as a list of objects; API failures are user errors."""
    timeout = min(30.0, settings.limits.request_timeout_s)
    answer = fetch_listing(settings, what, timeout_s=timeout, transport=transport)
    name = f"Get {what.title()}"
    match answer.kind:
        case Listing.OK:
            return list(answer.items)
        case Listing.UNREACHABLE:
            raise UserError(f"the API at {settings.api.base_url} is not reachable: {answer.detail}")
        case Listing.KEY_REJECTED:
            raise UserError(answer.detail)
        case Listing.NOT_JSON:
            raise UserError(f"the API answered {name} with a body that is not JSON")
        case Listing.NOT_A_LIST:
            raise UserError(f"the API answered {name} with something other than a list")
        case Listing.NOT_FOUND | Listing.REFUSED:
            said = answer.detail or "no message"
            raise UserError(f"the API answered {answer.status} to {name}: {logs.scrub(said)}")

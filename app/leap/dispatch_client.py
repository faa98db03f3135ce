"""Leap's dispatch endpoints and webhook subscriptions, on top of the API client.

Same retries, backoff and errors as the meter endpoints (it is the same client); only the
paths and shapes are added here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from app.leap.client import LeapClient
from app.leap.dispatch import (
    DispatchSearchRequest,
    DispatchWebhook,
    GroupDispatchSearchPage,
    IntegrationTestResponse,
    MeterDispatchSearchPage,
)
from app.leap.errors import LeapResponseError

Kind = Literal["meter", "group"]
SearchPage = MeterDispatchSearchPage | GroupDispatchSearchPage


class DispatchClient(LeapClient):
    # ---- dispatch searches ------------------------------------------------------------
    async def search_dispatches(self, kind: Kind, request: DispatchSearchRequest) -> SearchPage:
        """One page of `POST /v2/dispatch/{kind}/search`."""
        endpoint = f"search_{kind}_dispatches"
        response = await self._request(
            endpoint, "POST", f"/v2/dispatch/{kind}/search", json=request.to_body()
        )
        assert response is not None
        model: type[SearchPage] = (
            MeterDispatchSearchPage if kind == "meter" else GroupDispatchSearchPage
        )
        return self._parse(endpoint, response, model)

    async def iter_dispatch_pages(
        self, kind: Kind, request: DispatchSearchRequest
    ) -> AsyncIterator[SearchPage]:
        """Every page of a dispatch search, following `next_page_token`."""
        current = request
        while True:
            page = await self.search_dispatches(kind, current)
            yield page
            token = page.next_page_token
            if token is None:
                return
            if token == current.page_token:
                raise LeapResponseError(
                    f"Leap {kind} dispatch search returned the page token it was given",
                    endpoint=f"search_{kind}_dispatches",
                    status=200,
                )
            current = current.model_copy(update={"page_token": token})

    # ---- dispatch webhooks ------------------------------------------------------------
    async def get_dispatch_webhook(self, kind: Kind) -> DispatchWebhook | None:
        endpoint = f"get_{kind}_dispatch_webhook"
        path = f"/v2/dispatch/{kind}/webhook"
        response = await self._request(endpoint, "GET", path, none_on_404=True)
        return None if response is None else self._parse(endpoint, response, DispatchWebhook)

    async def put_dispatch_webhook(self, kind: Kind, webhook: DispatchWebhook) -> DispatchWebhook:
        endpoint = f"put_{kind}_dispatch_webhook"
        body = webhook.model_dump(mode="json")
        response = await self._request(endpoint, "PUT", f"/v2/dispatch/{kind}/webhook", json=body)
        assert response is not None
        return self._parse(endpoint, response, DispatchWebhook)

    async def dispatch_integration_test(
        self, kind: Kind, body: dict[str, Any]
    ) -> IntegrationTestResponse:
        """Ask Leap to post `body` (a test notification) to the registered webhook."""
        endpoint = f"{kind}_dispatch_integration_test"
        path = f"/v2/dispatch/{kind}/webhook/integration_test"
        response = await self._request(endpoint, "POST", path, json=body)
        assert response is not None
        return self._parse(endpoint, response, IntegrationTestResponse)

    # ---- event webhook subscriptions (/v1.1/webhooks) ---------------------------------
    async def list_event_webhooks(self) -> list[dict[str, Any]]:
        response = await self._request("list_webhooks", "GET", "/v1.1/webhooks")
        assert response is not None
        hooks = response.json().get("webhooks", [])
        return [h for h in hooks if isinstance(h, dict)]

    async def create_event_webhook(self, body: dict[str, Any]) -> str:
        response = await self._request("create_webhook", "POST", "/v1.1/webhooks", json=body)
        assert response is not None
        return str(response.json()["webhook_id"])

    async def update_event_webhook(self, webhook_id: str, body: dict[str, Any]) -> None:
        await self._request("update_webhook", "PUT", f"/v1.1/webhooks/{webhook_id}", json=body)

    async def test_event_webhook(self, webhook_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1.1/webhooks/{webhook_id}/test"
        response = await self._request("test_webhook", "POST", path, json=payload)
        assert response is not None
        answer: dict[str, Any] = response.json()
        return answer

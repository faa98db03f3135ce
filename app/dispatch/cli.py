"""`meter-sync leap ...`: register and check this service's webhooks at Leap.

- `subscribe --url https://HOST` registers (or updates) the event webhook subscription
  (`/v1.1/webhooks`, the seven event types, to HOST/webhooks/leap) and both dispatch
  webhooks (to HOST/webhooks/leap/dispatch), each with the configured secret header.
- `status` shows what Leap has registered, and whether it matches this configuration
  (secret values are never printed).
- `test` asks Leap for test notifications: an event webhook test and the meter and group
  dispatch integration tests (stored here as tests only).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from app.bootstrap import ensure_credentials
from app.config import ConfigError, Settings, load_settings
from app.leap.dispatch import DispatchWebhook, HeaderDescription
from app.leap.dispatch_client import DispatchClient, Kind
from app.leap.errors import LeapError

leap_cli = typer.Typer(help="Register and check this service's webhooks at Leap.")
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True)

EVENT_TYPES = (
    "meter.created",
    "connect_session.updated",
    "connect_session.authorization_updated",
    "meter.enrollment.global-status.updated",
    "meter.enrollment.participation-status.updated",
    "meter.enrollment.required-actions.updated",
    "meter.enrollment.group.updated",
)
KINDS: tuple[Kind, ...] = ("meter", "group")
_TEST_SLOT = {
    "start_time": "2023-07-21T00:00:00.000Z",
    "end_time": "2023-07-21T01:00:00.000Z",
    "energy_kw": 10,
    "nomination_kw": 10,
    "cancelled": False,
    "programs": ["CCA"],
    "priority": 1,
    "is_voluntary": False,
    "performance_compensation_cap": "up-to-nomination",
    "dispatch_event_types": ["capacity-test"],
}
TEST_BODIES: dict[Kind, dict[str, Any]] = {
    "meter": {
        "meter_dispatches": [
            {
                "meter_id": "dd21c76c-7126-4ef7-b0a6-f190fad300b2",
                "timeslots": [
                    {"meter_event_id": "1acfced0-16f4-4fb7-b72e-5ff939ae541e", **_TEST_SLOT}
                ],
            }
        ]
    },
    "group": {
        "group_dispatches": [
            {
                "market_group_id": "9d1a7aae-24e5-455f-91e9-e0f5f145f2ae",
                "meter_ids": ["dd21c76c-7126-4ef7-b0a6-f190fad300b2"],
                "timeslots": [
                    {"market_group_event_id": "1acfced0-16f4-4fb7-b72e-5ff939ae541e", **_TEST_SLOT}
                ],
            }
        ]
    },
}


def _settings() -> Settings:
    try:
        settings, _ = ensure_credentials(load_settings())
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if settings.leap_api_key is None:
        err.print("[red]LEAP_API_KEY is not set: Leap's API cannot be called.[/red]")
        raise typer.Exit(2)
    return settings


def _run(settings: Settings, work: Callable[[DispatchClient], Awaitable[int]]) -> None:
    assert settings.leap_api_key is not None
    key = settings.leap_api_key.get_secret_value()

    async def main() -> int:
        async with DispatchClient(settings.leap_api_base_url, key, max_attempts=3) as client:
            return await work(client)

    try:
        code = asyncio.run(main())
    except LeapError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _secret_header(settings: Settings) -> HeaderDescription:
    return HeaderDescription(
        name=settings.leap_webhook_header,
        value=settings.leap_webhook_secrets[0].get_secret_value(),
    )


def _matches(settings: Settings, headers: list[dict[str, Any]] | list[HeaderDescription]) -> bool:
    """True when the headers carry an accepted secret under the configured header name."""
    wanted = settings.leap_webhook_header.lower()
    for header in headers:
        item = header.model_dump() if isinstance(header, HeaderDescription) else header
        if str(item.get("name", "")).lower() != wanted:
            continue
        value = str(item.get("value", "")).encode()
        for secret in settings.leap_webhook_secrets:
            if hmac.compare_digest(value, secret.get_secret_value().encode()):
                return True
    return False


@leap_cli.command()
def subscribe(
    url: Annotated[str, typer.Option(help="This service's public base URL (https://HOST)")],
) -> None:
    """Register (or update) the event subscription and both dispatch webhooks at Leap."""
    settings = _settings()
    base = url.rstrip("/")
    header = _secret_header(settings)
    event_url, dispatch_url = f"{base}/webhooks/leap", f"{base}/webhooks/leap/dispatch"

    async def work(client: DispatchClient) -> int:
        body = {
            "receiver_url": event_url,
            "event_types": list(EVENT_TYPES),
            "headers": [header.model_dump()],
        }
        existing = [
            h for h in await client.list_event_webhooks() if h.get("receiver_url") == event_url
        ]
        if existing:
            webhook_id = str(existing[0]["webhook_id"])
            await client.update_event_webhook(webhook_id, body)
            out.print(f"event webhook {webhook_id} updated -> {event_url}")
        else:
            webhook_id = await client.create_event_webhook(body)
            out.print(f"event webhook {webhook_id} created -> {event_url}")
        for kind in KINDS:
            webhook = DispatchWebhook(url=dispatch_url, headers=[header])
            await client.put_dispatch_webhook(kind, webhook)
            out.print(f"{kind} dispatch webhook -> {dispatch_url}")
        out.print(f"header {settings.leap_webhook_header} carries the configured secret")
        return 0

    _run(settings, work)


@leap_cli.command()
def status() -> None:
    """Show the webhooks Leap has registered and whether they match this configuration."""
    settings = _settings()

    async def work(client: DispatchClient) -> int:
        problems = 0
        hooks = await client.list_event_webhooks()
        if not hooks:
            out.print("event webhooks: none registered")
            problems += 1
        for hook in hooks:
            ok = _matches(settings, hook.get("headers") or [])
            missing = sorted(set(EVENT_TYPES) - set(hook.get("event_types") or []))
            out.print(
                f"event webhook {hook.get('webhook_id')}: {hook.get('receiver_url')} "
                f"secret {'ok' if ok else 'NOT accepted here'}"
                + (f", missing types: {', '.join(missing)}" if missing else "")
            )
            problems += (not ok) + bool(missing)
        for kind in KINDS:
            webhook = await client.get_dispatch_webhook(kind)
            if webhook is None:
                out.print(f"{kind} dispatch webhook: none registered")
                problems += 1
                continue
            ok = _matches(settings, webhook.headers)
            state = "ok" if ok else "NOT accepted here"
            out.print(f"{kind} dispatch webhook: {webhook.url} secret {state}")
            problems += not ok
        return 1 if problems else 0

    _run(settings, work)


@leap_cli.command()
def test() -> None:
    """Ask Leap to send test notifications to every registered webhook."""
    settings = _settings()

    async def work(client: DispatchClient) -> int:
        failures = 0
        for hook in await client.list_event_webhooks():
            answer = await client.test_event_webhook(
                str(hook["webhook_id"]), {"webhook_event_type": "meter-sync.test"}
            )
            ok = bool(answer.get("is_successful"))
            failures += not ok
            out.print(f"event webhook {hook['webhook_id']}: {'ok' if ok else answer}")
        for kind in KINDS:
            result = await client.dispatch_integration_test(kind, TEST_BODIES[kind])
            ok = result.http_status is not None and 200 <= result.http_status < 300
            failures += not ok
            detail = result.http_status if ok else result.error_message or result.http_status
            out.print(f"{kind} dispatch integration test: {'ok' if ok else 'failed'} ({detail})")
        return 1 if failures else 0

    _run(settings, work)

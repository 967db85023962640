"""FHIR R4 HTTP transport (httpx): POST a transaction Bundle to the server base (FHIR R4 3.1.0.11).

* 2xx with a ``transaction-response`` Bundle: delivered.
* 4xx (except 408/429) with an ``OperationOutcome``: the server refused the content: dead letter carrying the
  server's diagnostics (a retry would be refused again).
* 408, 429, 5xx, timeouts and connection errors: retried with backoff.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any

import httpx

from interfaces.delivery import DeliveryOutcome

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_RETRY_STATUS = {408, 425, 429}


def outcome_text(body: Any) -> str:
    """The diagnostics of an OperationOutcome (or of a Bundle entry's outcome), one line."""
    if not isinstance(body, dict):
        return ""
    if body.get("resourceType") == "OperationOutcome":
        parts = []
        for issue in body.get("issue", []):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code", "")
            if text:
                parts.append(f"{issue.get('severity', 'error')}: {text}")
        return "; ".join(parts)
    return ""


class FhirTransport:
    """One httpx client per lane; ``send`` posts the Bundle and classifies the answer."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, verify: ssl.SSLContext | bool = True,
                 headers: dict[str, str] | None = None, name: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name or self.base_url
        self._client = httpx.AsyncClient(timeout=timeout, verify=verify, headers={
            "Accept": FHIR_JSON, "Content-Type": f"{FHIR_JSON}; charset=utf-8", **(headers or {})})
        self.timeout = timeout

    async def send(self, payload: bytes, message_id: str) -> DeliveryOutcome:
        try:
            response = await self._client.post(self.base_url, content=payload,
                                               headers={"X-Request-Id": message_id})
        except httpx.TimeoutException:
            return DeliveryOutcome("retry", "TIMEOUT", f"{self.name} did not answer within {self.timeout:g} s")
        except httpx.ConnectError as exc:
            return DeliveryOutcome("retry", "CONNECT", f"cannot connect to {self.name}: {exc}", destination_down=True)
        except httpx.HTTPError as exc:
            return DeliveryOutcome("retry", "HTTP", f"HTTP error talking to {self.name}: {exc}")
        code = str(response.status_code)
        try:
            body = response.json()
        except (json.JSONDecodeError, ValueError):
            body = None
        if 200 <= response.status_code < 300:
            if isinstance(body, dict) and body.get("resourceType") == "Bundle":
                return DeliveryOutcome("delivered", code)
            return DeliveryOutcome("retry", "MALFORMED", f"{self.name} answered {code} without a response Bundle")
        detail = outcome_text(body) or response.text[:300] or response.reason_phrase
        if response.status_code in _RETRY_STATUS or response.status_code >= 500:
            return DeliveryOutcome("retry", code, f"{self.name} answered {code}: {detail}",
                                   destination_down=response.status_code >= 500)
        return DeliveryOutcome("rejected", code, f"{self.name} refused the Bundle ({code}): {detail}")

    async def close(self) -> None:
        await self._client.aclose()

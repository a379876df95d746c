"""Signed postbacks (Standard Webhooks): which postbacks may be signed, and the headers they carry.

A Standard Webhooks signature covers `id.timestamp.body`, nothing of the URL. So a signed
postback is a POST that carries every value in its JSON body: a GET, whose values travel in
the query, is refused a signing secret (the signature would cover an empty body and any forged
query would verify), and a signed POST's URL holds no placeholder and gets no macro appended.
Receivers verify with any Standard Webhooks library, unchanged (docs/delivery.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from partners.macros import placeholders_in
from project import clock


def signing_problems(*, kind: str, method: str, destination_url: str) -> dict[str, str]:
    """Why a postback with a signing secret would send values its signature does not cover,
    as field name → message (empty when it may be signed)."""
    if kind != "custom":
        # A partner's template decides the method and URL (often a GET with the values in the query).
        return {"signing_secret": "Only custom postbacks are signed; leave the secret empty on a certified one."}
    problems = {}
    if method != "POST":
        problems["signing_secret"] = (
            "A signature covers the request body, and a GET has none: its values travel in the URL, unsigned. "
            "Choose the POST method to sign this postback (its values then travel in the signed JSON body), "
            "or leave the secret empty."
        )
    names = placeholders_in(destination_url)
    if names:
        listed = ", ".join(f"{{{name}}}" for name in names)
        problems["destination_url"] = (
            f"A signed postback carries its values in the signed body only: take {listed} out of the URL "
            "and select the macro instead."
        )
    return problems


def standard_webhooks_signature(*, secret: str, message_id: str, timestamp: int, body: str) -> str:
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, "id.timestamp.body")), key = base64 after whsec_."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, headers: dict[str, str], delivery_id: str, secret: str, body: str) -> dict[str, str]:
    """The headers a postback is sent with, for a delivery and a test postback alike: its own,
    X-Delivery-Id, and with a secret the Standard Webhooks headers of this attempt."""
    sent = {**headers, "X-Delivery-Id": delivery_id}
    if secret:
        timestamp = int(clock.now().timestamp())
        sent.update(
            {
                "webhook-id": delivery_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": standard_webhooks_signature(
                    secret=secret, message_id=delivery_id, timestamp=timestamp, body=body
                ),
            }
        )
    return sent

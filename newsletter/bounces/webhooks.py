"""Bounce and complaint events that mail providers post: checked to come from the provider,
then read into the same `Report`s as a bounce mailbox gives.

- Amazon SES through SNS (`ses_topic_arn`): the TopicArn configured, and an RSA signature
  (SignatureVersion 1: SHA1, 2: SHA256) by the certificate at SigningCertURL, which must
  be an https URL on sns.<region>.amazonaws.com;
- Mailgun (`mailgun_signing_key`): HMAC-SHA256 of timestamp + token with the signing key,
  the timestamp within 5 minutes;
- Postmark (`postmark_password`): HTTP basic authentication as user "postmark";
- SendGrid (`sendgrid_public_key`, base64 DER): an ECDSA P-256 signature over timestamp +
  body (headers X-Twilio-Email-Event-Webhook-Signature and -Timestamp).

An empty setting turns its provider off. Events that are neither a bounce nor a complaint
(deliveries, opens, deferrals, drops) are accepted and ignored, and so is one malformed
event of a batch; a body that cannot be read at all is refused naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from newsletter.bounces.reports import (
    DIAGNOSTIC_LENGTH,
    Report,
    clean,
    external_id,
    failure_kind,
    match_verp,
    status_code,
)
from newsletter.config import Settings
from newsletter.errors import ConfigError, InvalidInputError, NewsletterError
from newsletter.models import BounceKind

log = logging.getLogger(__name__)

PROVIDERS = ("ses", "mailgun", "postmark", "sendgrid")
MAILGUN_MAX_AGE = 300  # seconds: an older signed request is a replay
MAILGUN_TOKENS_KEPT = 10_000
FETCH_TIMEOUT = 10.0
FETCH_MAX_BYTES = 256 * 1024  # a certificate or a subscription answer is a few KiB
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]{1,40}\.amazonaws\.com")
_ANY_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_CERTIFICATES_KEPT = 16

Fetch = Callable[[str], bytes]  # GET an https URL, return its body; FetchError otherwise


class WebhookRefused(NewsletterError):
    """A provider's request was refused. `provider` names the webhook; `kind` is
    "not configured" (its setting is empty), "unauthenticated" (no credentials or
    signature), "forged" (wrong ones) or "unavailable" (the proof could not be checked
    now: try later); `reason` says what exactly."""

    def __init__(self, provider: str, kind: str, reason: str) -> None:
        super().__init__(f"{provider} webhook: {reason}")
        self.provider = provider
        self.kind = kind
        self.reason = reason


class FetchError(NewsletterError):
    """An https URL could not be fetched."""


def fetch_https(url: str) -> bytes:
    """The body of an https GET of `url`: no redirects, bounded in time and size."""
    if not url.startswith("https://"):
        raise FetchError(f"{url}: not an https URL")
    import httpx  # loaded when an SNS message comes, not in every process (a worker)

    try:
        with (
            httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise FetchError(f"{url}: answered {response.status_code}")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > FETCH_MAX_BYTES:
                    raise FetchError(f"{url}: more than {FETCH_MAX_BYTES} bytes")
            return body
    except (httpx.HTTPError, OSError, ValueError) as exc:
        raise FetchError(f"{url}: {exc}") from None


class Webhooks:
    """Checks and reads provider events. `fetch` gets SNS certificates and confirms SNS
    subscriptions (tests pass their own); ConfigError at construction when the SendGrid
    key is not a public key."""

    def __init__(self, settings: Settings, fetch: Fetch = fetch_https) -> None:
        self.settings = settings.bounces
        self._site = settings  # its secret (the VERP mac) is read when first needed
        self.fetch = fetch
        self._certificates: dict[str, x509.Certificate] = {}
        self._sendgrid_key = _sendgrid_key(settings.bounces.sendgrid_public_key)
        # Mailgun signs a token, not the body: a token seen within the replay window is a
        # request captured and sent again (held per process)
        self._mailgun_tokens: dict[str, float] = {}
        self._lock = threading.Lock()  # requests are checked in several threads at once

    def reports(
        self, provider: str, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> list[Report]:
        """The reports in a provider's request. WebhookRefused when the provider is off or
        the request is not proven to come from it; InvalidInputError naming the field when
        the body cannot be read."""
        lowered = {key.lower(): value for key, value in headers.items()}
        if provider == "ses":
            return self.ses(body, now)
        if provider == "mailgun":
            return self.mailgun(body, now)
        if provider == "postmark":
            return self.postmark(body, lowered)
        if provider == "sendgrid":
            return self.sendgrid(body, lowered)
        raise WebhookRefused(provider, "not configured", "no such webhook")

    # ------------------------------------------------------------------ Amazon SES (SNS)

    def ses(self, body: bytes, now: datetime) -> list[Report]:
        arn = self.settings.ses_topic_arn
        if not arn:
            raise WebhookRefused("ses", "not configured", "[bounces] ses_topic_arn is empty")
        note = _json_object(body)
        kind = _string(note, "Type")
        if _string(note, "TopicArn") != arn:
            raise WebhookRefused("ses", "forged", "TopicArn is not [bounces] ses_topic_arn")
        self._check_sns_signature(note, kind, now)
        if kind == "SubscriptionConfirmation":
            url = _string(note, "SubscribeURL")
            _check_sns_url(url, "SubscribeURL")
            try:
                self.fetch(url)
            except FetchError as exc:
                raise WebhookRefused("ses", "unavailable", f"confirming: {exc}") from None
            log.info("confirmed the SNS subscription to %s", arn)
            return []
        if kind == "UnsubscribeConfirmation":
            log.warning("SNS says the subscription to %s was cancelled", arn)
            return []
        if kind != "Notification":
            raise InvalidInputError("Type", f"{kind!r:.60} is not an SNS message type")
        try:
            message = json.loads(_string(note, "Message"))
        except (ValueError, RecursionError):
            raise InvalidInputError("Message", "is not JSON") from None
        if not isinstance(message, dict):
            raise InvalidInputError("Message", "is not a JSON object")
        return self._ses_reports(message, _string(note, "MessageId"))

    def _check_sns_signature(self, note: dict[str, Any], kind: str, now: datetime) -> None:
        version = note.get("SignatureVersion")
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # what SNS signs with unless told otherwise
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise WebhookRefused("ses", "unauthenticated", "SignatureVersion is not 1 or 2")
        if not isinstance(note.get("Signature"), str):
            raise WebhookRefused("ses", "unauthenticated", "the Signature is missing")
        try:
            signature = base64.b64decode(note["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRefused("ses", "forged", "the Signature is not base64") from None
        url = _string(note, "SigningCertURL")
        _check_sns_url(url, "SigningCertURL")
        key = self._sns_certificate(url, now).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookRefused("ses", "forged", "the signing certificate is not RSA")
        if kind == "Notification":
            names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token"]
            names += ["TopicArn", "Type"]
        # "name\nvalue\n" for each field in this order; Subject only when there is one
        signed = "".join(
            f"{name}\n{_string(note, name)}\n"
            for name in names
            if name != "Subject" or note.get(name) is not None
        )
        try:
            key.verify(signature, signed.encode(), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise WebhookRefused("ses", "forged", "the signature does not verify") from None

    def _sns_certificate(self, url: str, now: datetime) -> x509.Certificate:
        certificate = self._certificates.get(url)
        if certificate is None:
            try:
                pem = self.fetch(url)
            except FetchError as exc:
                raise WebhookRefused("ses", "unavailable", f"the certificate: {exc}") from None
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise WebhookRefused(
                    "ses", "forged", "SigningCertURL holds no PEM certificate"
                ) from None
            if len(self._certificates) >= _CERTIFICATES_KEPT:
                self._certificates.clear()  # SNS rotates rarely: a handful is plenty
            self._certificates[url] = certificate
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise WebhookRefused("ses", "forged", "the signing certificate is not valid now")
        return certificate

    def _ses_reports(self, message: dict[str, Any], sns_id: str) -> list[Report]:
        kind = message.get("notificationType") or message.get("eventType")
        mail = _object(message.get("mail"))
        common = _object(mail.get("commonHeaders"))
        message_id = _message_id(common.get("messageId"))
        delivery_id, tampered = self._delivery([mail.get("source")])
        found: list[Report] = []
        if kind == "Bounce":
            bounce = _object(message.get("bounce"))
            permanent = bounce.get("bounceType") == "Permanent"
            feedback = clean(bounce.get("feedbackId") or sns_id, 200)
            for recipient in _objects(bounce.get("bouncedRecipients")):
                email = clean(recipient.get("emailAddress", ""), 254)
                status = status_code(clean(recipient.get("status", ""), 40))
                bounce_kind = failure_kind(status) if permanent else BounceKind.soft
                found.append(
                    Report(
                        bounce_kind,
                        email,
                        status,
                        clean(recipient.get("diagnosticCode", ""), DIAGNOSTIC_LENGTH),
                        delivery_id,
                        external_id(f"ses:{feedback}:{email}"),
                        message_id,
                        tampered,
                    )
                )
        elif kind == "Complaint":
            complaint = _object(message.get("complaint"))
            feedback_type = clean(complaint.get("complaintFeedbackType", "abuse"), 40)
            if feedback_type == "not-spam":
                return []
            feedback = clean(complaint.get("feedbackId") or sns_id, 200)
            for recipient in _objects(complaint.get("complainedRecipients")):
                email = clean(recipient.get("emailAddress", ""), 254)
                found.append(
                    Report(
                        BounceKind.complaint,
                        email,
                        "",
                        f"feedback-type {feedback_type}",
                        delivery_id,
                        external_id(f"ses:{feedback}:{email}"),
                        message_id,
                        tampered,
                    )
                )
        return found

    # ------------------------------------------------------------------ Mailgun

    def mailgun(self, body: bytes, now: datetime) -> list[Report]:
        key = self.settings.mailgun_signing_key
        if not key:
            raise WebhookRefused(
                "mailgun", "not configured", "[bounces] mailgun_signing_key is empty"
            )
        data = _json_object(body)
        signature = data.get("signature")
        if not isinstance(signature, dict) or not all(
            isinstance(signature.get(name), str) for name in ("timestamp", "token", "signature")
        ):
            raise WebhookRefused(
                "mailgun", "unauthenticated", "signature {timestamp, token, signature} missing"
            )
        expected = hmac.new(
            key.encode(), (signature["timestamp"] + signature["token"]).encode(), hashlib.sha256
        ).hexdigest()
        given = signature["signature"].lower().encode()
        if not hmac.compare_digest(expected.encode(), given):
            raise WebhookRefused("mailgun", "forged", "the signature does not verify")
        if not re.fullmatch(r"[0-9]{1,12}", signature["timestamp"]):
            raise WebhookRefused("mailgun", "forged", "the timestamp is not a number")
        signed_at = int(signature["timestamp"])
        if abs(now.timestamp() - signed_at) > MAILGUN_MAX_AGE:
            raise WebhookRefused(
                "mailgun", "forged", "the timestamp is more than 5 minutes away (a replay?)"
            )
        self._remember_token(signature["token"], now.timestamp())
        event = data.get("event-data")
        if not isinstance(event, dict):
            raise InvalidInputError("event-data", "is missing or not an object")
        name = event.get("event")
        if name == "failed":
            status = _mailgun_status(_object(event.get("delivery-status")))
            if event.get("severity") == "permanent":
                kind = failure_kind(status)
            elif event.get("severity") == "temporary":
                kind = BounceKind.soft
            else:
                return []
        elif name == "complained":
            status, kind = "", BounceKind.complaint
        else:
            return []
        delivery = _object(event.get("delivery-status"))
        diagnostic = delivery.get("message") or delivery.get("description") or ""
        headers = _object(_object(event.get("message")).get("headers"))
        delivery_id, tampered = self._delivery([_object(event.get("envelope")).get("sender")])
        event_id = clean(event.get("id", ""), 200) or signature["token"]
        return [
            Report(
                kind,
                clean(event.get("recipient", ""), 254),
                status,
                clean(diagnostic, DIAGNOSTIC_LENGTH),
                delivery_id,
                external_id(f"mailgun:{event_id}"),
                _message_id(headers.get("message-id")),
                tampered,
            )
        ]

    def _remember_token(self, token: str, now: float) -> None:
        with self._lock:
            tokens = self._mailgun_tokens
            if token in tokens:
                raise WebhookRefused("mailgun", "forged", "the token was used before (a replay)")
            if len(tokens) >= MAILGUN_TOKENS_KEPT:
                for old in [t for t, seen in tokens.items() if now - seen > 2 * MAILGUN_MAX_AGE]:
                    del tokens[old]
                if len(tokens) >= MAILGUN_TOKENS_KEPT:
                    tokens.clear()  # a flood of valid requests: the timestamp check remains
            tokens[token] = now

    # ------------------------------------------------------------------ Postmark

    def postmark(self, body: bytes, headers: Mapping[str, str]) -> list[Report]:
        password = self.settings.postmark_password
        if not password:
            raise WebhookRefused(
                "postmark", "not configured", "[bounces] postmark_password is empty"
            )
        user, given = _basic_auth(headers.get("authorization", ""))
        if user is None:
            raise WebhookRefused("postmark", "unauthenticated", "basic authentication missing")
        # both compared in full, so the time taken tells nothing about either
        right_user = hmac.compare_digest(user.encode(), b"postmark")
        right_password = hmac.compare_digest(given.encode(), password.encode())
        if not (right_user and right_password):
            raise WebhookRefused("postmark", "unauthenticated", "wrong user name or password")
        data = _json_object(body)
        record_type = data.get("RecordType")
        bounce_type = data.get("Type")
        if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
            kind = BounceKind.complaint
        elif record_type == "Bounce" and bounce_type in _POSTMARK_KINDS:
            kind = _POSTMARK_KINDS[bounce_type]
        else:
            return []
        details = clean(data.get("Details", ""), DIAGNOSTIC_LENGTH)
        found = _ANY_STATUS.search(details)
        event_id = clean(data.get("ID", ""), 100)
        if not event_id:
            raise InvalidInputError("ID", "is missing")
        return [
            Report(
                kind,
                clean(data.get("Email", ""), 254),
                found.group(1) if found else "",
                details or clean(data.get("Description", ""), DIAGNOSTIC_LENGTH),
                None,  # Postmark's bounces go to its own return path: no VERP comes back
                external_id(f"postmark:{record_type}:{event_id}"),
                None,
            )
        ]

    # ------------------------------------------------------------------ SendGrid

    def sendgrid(self, body: bytes, headers: Mapping[str, str]) -> list[Report]:
        key = self._sendgrid_key
        if key is None:
            raise WebhookRefused(
                "sendgrid", "not configured", "[bounces] sendgrid_public_key is empty"
            )
        signature = headers.get("x-twilio-email-event-webhook-signature")
        timestamp = headers.get("x-twilio-email-event-webhook-timestamp")
        if not signature or not timestamp:
            raise WebhookRefused(
                "sendgrid",
                "unauthenticated",
                "X-Twilio-Email-Event-Webhook-Signature or -Timestamp missing",
            )
        try:
            key.verify(
                base64.b64decode(signature, validate=True),
                timestamp.encode() + body,
                ec.ECDSA(hashes.SHA256()),
            )
        except (InvalidSignature, binascii.Error, ValueError):
            raise WebhookRefused("sendgrid", "forged", "the signature does not verify") from None
        events = _json(body)
        if not isinstance(events, list):
            raise InvalidInputError(None, "the body is not a JSON array of events")
        found: list[Report] = []
        for event in events:
            if not isinstance(event, dict):
                continue
            report = self._sendgrid_report(event)
            if report is not None:
                found.append(report)
        return found

    def _sendgrid_report(self, event: dict[str, Any]) -> Report | None:
        name = event.get("event")
        status = status_code(clean(event.get("status", ""), 40))
        if name == "bounce":
            # "blocked": the receiving server refused us (a block list, a policy)
            kind = BounceKind.soft if event.get("type") == "blocked" else failure_kind(status)
        elif name == "spamreport":
            kind = BounceKind.complaint
        else:
            return None  # delivered, deferred, dropped (SendGrid's own list), opens...
        event_id = clean(event.get("sg_event_id", ""), 200)
        if not event_id:
            canonical = json.dumps(event, sort_keys=True, default=str).encode()
            event_id = hashlib.sha256(canonical).hexdigest()
        return Report(
            kind,
            clean(event.get("email", ""), 254),
            status,
            clean(event.get("reason", ""), DIAGNOSTIC_LENGTH),
            None,
            external_id(f"sendgrid:{event_id}"),
            _message_id(event.get("smtp-id")),
        )

    def _delivery(self, senders: list[object]) -> tuple[int | None, bool]:
        """The delivery a VERP envelope sender names, and whether one failed to verify."""
        return match_verp(self._site.secret, [s for s in senders if isinstance(s, str)])


_POSTMARK_KINDS = {
    "HardBounce": BounceKind.hard,
    "BadEmailAddress": BounceKind.hard,
    "SoftBounce": BounceKind.soft,
    "Transient": BounceKind.soft,
    "DnsError": BounceKind.soft,
    "Blocked": BounceKind.soft,
}


def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey | None:
    if not text:
        return None
    try:
        key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(
            "[bounces] sendgrid_public_key = (hidden) is not allowed: expected the "
            "verification key SendGrid shows (base64 of a P-256 ECDSA public key in DER)"
        )
    return key


def _check_sns_url(url: str, field: str) -> None:
    """Refuse a URL SNS would not send: only https on sns.<region>.amazonaws.com, so
    nobody can point us at a certificate of their own (or make us fetch anything else)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port, parts = "", None, urlsplit("")
    if (
        parts.scheme != "https"
        or not _SNS_HOST.fullmatch(host)
        or parts.username is not None
        or port not in (None, 443)
    ):
        raise WebhookRefused(
            "ses", "forged", f"{field} is not an https URL on sns.<region>.amazonaws.com"
        )


def _basic_auth(header: str) -> tuple[str | None, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, ""
    try:
        user, separator, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, ValueError):
        return None, ""
    return (user, password) if separator else (None, "")


def _mailgun_status(delivery: dict[str, Any]) -> str:
    for value in (delivery.get("enhanced-code"), delivery.get("message")):
        if isinstance(value, str):
            found = _ANY_STATUS.search(value)
            if found:
                return found.group(1)
    return ""


def _message_id(value: object) -> str | None:
    """A Message-ID as the ledger writes it, in <>: providers drop them."""
    text = clean(value, 298).strip("<> ") if isinstance(value, str) else ""
    return f"<{text}>" if text else None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidInputError(None, "the body is not JSON") from None


def _json_object(body: bytes) -> dict[str, Any]:
    data = _json(body)
    if not isinstance(data, dict):
        raise InvalidInputError(None, "the body is not a JSON object")
    return data


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise InvalidInputError(name, "is missing or not a string")
    return value


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []

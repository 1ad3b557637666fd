"""Posting one event to the webhook receiver: a signed HTTP POST (http.client).

Headers: X-Ates-Event, X-Ates-Delivery (the event's id, the same on every retry) and
X-Ates-Signature: sha256=<hex HMAC-SHA256 of the raw body with [webhook] secret>. Only a 2xx
answer counts as delivered; redirects are not followed (they would take the signed body
elsewhere). Errors are translated here, once, into WebhookError and WebhookUnreachable, whose
messages never hold the secret or the URL's password or query string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ssl
import uuid
from urllib.parse import unquote, urlsplit

from poller import __version__
from poller.ates import events
from poller.clock import utc_now
from poller.config.webhook import WebhookSettings
from poller.errors import WebhookError, WebhookUnreachable
from poller.store.database import iso

# Bytes of an answer read (and thrown away): receivers say what they want in the status line.
MAX_ANSWER_BYTES = 64 * 1024


def sign(secret: str, body: bytes) -> str:
    """Return the X-Ates-Signature value of body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post(hook: WebhookSettings, delivery_id: str, event: str, body: str) -> int:
    """POST one event; return the receiver's 2xx status.

    Raises WebhookUnreachable when there is no connection or no answer within hook.timeout,
    WebhookError when the receiver answers anything but 2xx.
    """
    assert hook.url is not None
    data = body.encode("utf-8")
    url = urlsplit(hook.url)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"ates-poller/{__version__}",
        "X-Ates-Event": event,
        "X-Ates-Delivery": delivery_id,
        "X-Ates-Signature": sign(hook.secret, data),
    }
    if url.username is not None:
        user = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(user).decode("ascii")
    if url.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.hostname, url.port, timeout=hook.timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=hook.timeout)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        connection.request("POST", target, body=data, headers=headers)
        answer = connection.getresponse()
        answer.read(MAX_ANSWER_BYTES)
    except TimeoutError:
        raise WebhookUnreachable(f"no answer from {hook.shown_url()} within {hook.timeout:g}s") \
            from None
    except http.client.InvalidURL as exc:  # its text repeats the URL, query string and all
        raise WebhookUnreachable(f"cannot reach {hook.shown_url()}: {type(exc).__name__}") \
            from None
    except (OSError, http.client.HTTPException) as exc:
        reason = str(exc) or type(exc).__name__
        raise WebhookUnreachable(f"cannot reach {hook.shown_url()}: {reason}") from None
    finally:
        connection.close()
    if not 200 <= answer.status < 300:
        raise WebhookError(f"{hook.shown_url()} answered HTTP {answer.status} {answer.reason}")
    return answer.status


def ping(hook: WebhookSettings) -> int:
    """POST a signed ping event (about no ticket); return the 2xx status or raise as post()."""
    delivery_id = str(uuid.uuid4())
    return post(hook, delivery_id, events.PING,
                events.body(delivery_id, events.PING, iso(utc_now()), "check", None, None))

"""Posting one event to the webhook receiver: a signed HTTP POST (http.client).

Headers: X-Ates-Event, X-Ates-Delivery (the event's id, the same on every retry),
X-Ates-Timestamp (Unix seconds of this attempt) and X-Ates-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<raw body>" with [webhook] secret>, so that a receiver can refuse an old delivery
replayed. Only a 2xx answer counts as delivered; redirects are not followed (they would take the
signed body elsewhere). Every attempt ends within [webhook] timeout, whatever the receiver
sends, and at once when the stop event is set. Errors are translated here, once, into
WebhookRefused, WebhookError and WebhookUnreachable, whose messages never hold the secret or the
URL's password, path or query string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ssl
import threading
import time
import uuid
from urllib.parse import unquote, urlsplit

from poller import __version__
from poller.ates import events
from poller.clock import utc_now
from poller.config.webhook import WebhookSettings
from poller.deadline import Stopped
from poller.deadline import post as bounded_post
from poller.errors import WebhookRefused, WebhookUnreachable
from poller.mail.printable import printable
from poller.store.database import iso

# Bytes of an answer read (and thrown away): receivers say what they want in the status line.
MAX_ANSWER_BYTES = 64 * 1024


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the X-Ates-Signature value of body sent at timestamp."""
    signed = timestamp.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def post(hook: WebhookSettings, delivery_id: str, event: str, body: str,
         stop: threading.Event | None = None, seconds: float | None = None) -> int:
    """POST one event; return the receiver's 2xx status.

    The attempt ends within seconds (default: hook.timeout). Raises WebhookUnreachable when
    there is no connection or no whole answer in time, or stop was set (the post is cut),
    WebhookRefused when the receiver answers anything but 2xx.
    """
    assert hook.url is not None
    seconds = hook.timeout if seconds is None else min(seconds, hook.timeout)
    data = body.encode("utf-8")
    url = urlsplit(hook.url)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"ates-poller/{__version__}",
        "X-Ates-Event": event,
        "X-Ates-Delivery": delivery_id,
        "X-Ates-Timestamp": timestamp,
        "X-Ates-Signature": sign(hook.secret, timestamp, data),
    }
    if url.username is not None:
        user = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(user).decode("ascii")
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        context = ssl.create_default_context(cafile=hook.cafile) \
            if url.scheme == "https" else None
        answer = bounded_post(url.hostname or "", url.port, target, data, headers, seconds,
                              context, stop, MAX_ANSWER_BYTES)
    except TimeoutError:
        raise WebhookUnreachable(f"no answer from {hook.shown_url()} within "
                                 f"{seconds:g}s") from None
    except Stopped:
        raise WebhookUnreachable(f"the post to {hook.shown_url()} was cut by the stop "
                                 "request") from None
    except http.client.InvalidURL as exc:  # its text repeats the URL, query string and all
        raise WebhookUnreachable(f"cannot reach {hook.shown_url()}: {type(exc).__name__}") \
            from None
    except (OSError, http.client.HTTPException) as exc:
        reason = str(exc) or type(exc).__name__
        raise WebhookUnreachable(f"cannot reach {hook.shown_url()}: {reason}") from None
    if not 200 <= answer.status < 300:
        reason = printable(" ".join(answer.reason.split()))[:100]
        raise WebhookRefused(f"{hook.shown_url()} answered HTTP {answer.status} {reason}",
                             answer.status)
    return answer.status


def ping(hook: WebhookSettings) -> int:
    """POST a signed ping event (about no ticket); return the 2xx status or raise as post()."""
    delivery_id = str(uuid.uuid4())
    return post(hook, delivery_id, events.PING,
                events.body(delivery_id, events.PING, iso(utc_now()), "check", None, None))

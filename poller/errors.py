"""The exception hierarchy. Each error is raised by one layer and handled by the next one up.

PollerError
├── ConfigError          config: names section and key; raised before any I/O (exit 2)
├── MessageError         message/token: expected, per mail; the mail is quarantined
│   ├── TokenMissing
│   └── TokenInvalid     bad XML, DTD/entity declarations, missing field
├── MailboxError         mailbox: imapclient/socket/ssl and token endpoint errors translated once
│   ├── MailboxUnavailable  transient: retried, then the pass aborts (exit 3); also a token
│   │                       endpoint that is down or busy, and a login the server cannot check
│   └── MailboxAuthError    permanent: wrong password, untrusted certificate, the token endpoint
│                           refusing the client, a fresh token refused too (exit 3)
├── StoreError           store: database unusable (exit 3); peewee/psycopg errors translated
│   │                    once, by the engines (poller.store.engine)
│   └── StoreUnavailable    the database cannot be reached or written (locked, disk full,
│                           connection lost): a pass stops rather than go on mail by mail
├── ReaderError          service: the reading helper process cannot be started (exit 3)
├── ImportFileError      importer: a bad CSV row, with its line number (exit 2)
└── WebhookError         webhooks: the receiver did not take an event
    ├── WebhookRefused      it answered other than 2xx (the status is kept)
    └── WebhookUnreachable  no connection, or no whole answer within [webhook] timeout
                         http.client/socket/ssl errors translated once; the event stays pending
"""


class PollerError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(PollerError):
    """A setting is missing or invalid; the message names the section and key."""


class MessageError(PollerError):
    """A mail cannot be turned into a ticket; the message is the quarantine reason."""


class TokenMissing(MessageError):
    """The mail carries no <Autotask> token."""


class TokenInvalid(MessageError):
    """The mail carries a token that cannot be read safely or completely."""


class MailboxError(PollerError):
    """An IMAP operation failed."""


class MailboxUnavailable(MailboxError):
    """The server could not be reached or dropped the connection; worth retrying."""


class MailboxAuthError(MailboxError):
    """Login or certificate verification failed; retrying will not help."""


class StoreError(PollerError):
    """The ticket database cannot be opened or written."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or written just now; the whole pass stops."""


class ReaderError(PollerError):
    """The helper process that reads mail cannot be started (a mail it fails on is quarantined
    instead)."""


class ImportFileError(PollerError):
    """A directory CSV file has a bad header or row."""


class WebhookError(PollerError):
    """The webhook receiver did not take an event; it stays in the outbox and is retried."""


class WebhookUnreachable(WebhookError):
    """The webhook receiver could not be reached or did not answer in time."""


class WebhookRefused(WebhookError):
    """The webhook receiver answered other than 2xx; status is its HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status

"""ATES: the token reader, the Alert, and every rule of Autotask's Add Ticket Email Service.

Authentication, organization, contact and device matching, duplicates and clear alerts, the
same mail delivered twice, what a mail without a token gets, the attachment budget, the UDF
vocabulary and the keys the rules look things up by (poller.ates.lookups) all live here, as
pure functions of (what a mail says, what the store knows, the policy) → Decision; the words
the processed-mail log is written in (outcomes, statuses, mailbox steps) are
poller.ates.outcomes. The store is reached only through the Directory protocol, so every rule
is tested without a database; the service carries decisions out.

May import: poller.mail, poller.errors, the standard library and xmltodict (import-linter
checks it; see pyproject.toml).
"""

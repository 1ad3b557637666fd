"""What a server's untagged responses say while the worker waits in IDLE."""

from __future__ import annotations

from poller.errors import MailboxUnavailable


def announces_mail(responses: list[tuple], exists: int) -> tuple[bool, int]:
    """Return whether IDLE responses announce new mail, and the folder's new message count
    (EXISTS was EXISTS before them); raise on BYE.

    Only an EXISTS above the count is new mail: after an EXPUNGE (another connection moving
    mail out) Courier also sends the new, smaller EXISTS.
    """
    new = False
    for response in responses:
        if response and response[0] == b"BYE":
            detail = response[1].decode("utf-8", "replace") if len(response) > 1 else ""
            raise MailboxUnavailable(f"the server ended the session: BYE {detail}".rstrip())
        if len(response) > 1 and isinstance(response[0], int):
            if response[1] == b"EXPUNGE":
                exists = max(exists - 1, 0)
            elif response[1] == b"EXISTS":
                new |= response[0] > exists
                exists = response[0]
    return new, exists


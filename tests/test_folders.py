"""Folder names from the settings → a server's names; what counts as new mail in IDLE. Pure
functions; against the real servers in test_worker_imap.py and test_service.py."""

from __future__ import annotations

import pytest

from poller.errors import MailboxUnavailable
from poller.folders import FolderNames, from_namespace, same_folder, same_server_name
from poller.imap.responses import announces_mail

# NAMESPACE answers as imapclient gives them
CYRUS = from_namespace([("INBOX.", ".")], [[("user.", ".")], [("", ".")]])
DOVECOT = from_namespace([("", "/")], [[], []])
SHARED = from_namespace([("INBOX.", ".")], [[], [("#shared.", ".")]])


@pytest.mark.parametrize(("written", "cyrus", "dovecot"), [
    ("INBOX", "INBOX", "INBOX"),
    ("inbox", "INBOX", "INBOX"),
    ("Processed", "INBOX.Processed", "Processed"),
    ("ATES/Processed", "INBOX.ATES.Processed", "ATES/Processed"),
    ("INBOX/Alerts", "INBOX.Alerts", "INBOX/Alerts"),
    ("No token", "INBOX.No token", "No token"),
    ("INBOX.Processed", "INBOX.Processed", "INBOX.Processed"),  # already in Cyrus's form
])
def test_names_get_the_separator_and_personal_prefix(written, cyrus, dovecot):
    assert CYRUS.server(written) == cyrus
    assert DOVECOT.server(written) == dovecot


def test_folders_of_other_namespaces_are_left_alone():
    assert SHARED.server("#shared/Alerts") == "#shared.Alerts"
    assert SHARED.server("Alerts") == "INBOX.Alerts"


def test_a_server_without_namespace_keeps_the_names_with_its_separator():
    assert FolderNames(separator=".").server("ATES/Processed") == "ATES.Processed"


def test_new_mail_is_an_exists_above_the_count():
    assert announces_mail([(6, b"EXISTS"), (1, b"RECENT")], 5) == (True, 6)
    assert announces_mail([(b"OK", b"Still here")], 5) == (False, 5)


def test_an_exists_after_the_workers_own_expunge_is_not_new_mail():
    # Courier, after another connection moved two mails out: EXPUNGE each, then the count
    assert announces_mail([(1, b"EXPUNGE"), (1, b"EXPUNGE"), (3, b"EXISTS")], 5) == (False, 3)
    assert announces_mail([(2, b"EXPUNGE"), (5, b"EXISTS")], 5) == (True, 5)  # one out, one in
    assert announces_mail([(3, b"FETCH", (b"FLAGS", (b"\\Seen",)))], 3) == (False, 3)


def test_bye_during_idle_is_a_lost_connection():
    with pytest.raises(MailboxUnavailable, match="BYE"):
        announces_mail([(b"BYE", b"shutting down")], 1)


@pytest.mark.parametrize(("one", "other", "same"), [
    ("INBOX", "inbox", True),
    ("INBOX/Alerts", "Inbox//Alerts/", True),
    ("ATES/Processed", "ATES/Processed", True),
    ("Alerts", "INBOX/Alerts", False),  # the server may still map both to one; see the docstring
    ("Processed", "Quarantine", False),
])
def test_two_names_of_one_folder_are_told_apart_from_two_folders(one, other, same):
    assert same_folder(one, other) is same


@pytest.mark.parametrize(("written", "cyrus"), [
    ("inbox.Alerts", "INBOX.Alerts"), ("Inbox.ATES.Done", "INBOX.ATES.Done"),
    ("inbox/Alerts", "INBOX.Alerts")])
def test_a_name_in_the_servers_form_never_gets_its_prefix_twice(written, cyrus):
    assert CYRUS.server(written) == cyrus


def test_names_are_compared_without_case():
    assert same_server_name("Alerts", "alerts")
    assert same_server_name("INBOX.Alerts", "inbox.ALERTS")
    assert not same_server_name("Alerts", "Alerts2")
    assert same_folder("Kaseya/Alerts", "KASEYA/alerts/") and not same_folder("A", "B")

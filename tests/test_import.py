"""`poller import`: all or nothing (the same key twice, unknown organizations, bad mappings and
rows), dry runs, JSON, and what a re-import changes."""

from __future__ import annotations

import json

import pytest

from testkit.importing import ORGS, devices, imported, rows, settings_file, udfs


@pytest.fixture
def config(tmp_path, database_url):
    return settings_file(tmp_path, database_url)


# -- all or nothing ---------------------------------------------------------------------------

def nothing_imported(tmp_path):
    assert rows(tmp_path, "SELECT count(*) FROM organization WHERE NOT is_local") == [(0,)]
    assert rows(tmp_path, "SELECT count(*) FROM device") == [(0,)]
    assert rows(tmp_path, "SELECT count(*) FROM contact") == [(0,)]
    assert rows(tmp_path, "SELECT count(*) FROM udf_value") == [(0,)]


@pytest.mark.parametrize(("kind", "text", "options", "expected"), [
    ("organizations", "name,Kaseya Customer ID\nA,1\nB,2\nA,3\n", (),
     "organizations.csv:4: organization 'A' is on line 2 already (one row per organization "
     "name"),
    ("organizations", "Customer,Id\nA,1\nB,2\nC,1\n",
     ("--column", "Customer=name", "--column", "Id=Kaseya Customer ID", "--organization-by",
      "Kaseya Customer ID"),
     "organizations.csv:4: organization 'C' (Kaseya Customer ID '1') is on line 2 already"),
    ("organizations", "name,Kaseya Customer ID\nA,1\nA,2\n", ("--organization-by",
                                                         "Kaseya Customer ID"),
     "organizations.csv:3: organization 'A' (Kaseya Customer ID '2') is on line 2 already"),
    ("devices", "name,organization\nPC1,Acme MSP\nPC2,Acme MSP\n\"PC1\",Acme MSP\n", (),
     "devices.csv:4: device 'PC1' of 'Acme MSP' is on line 2 already (one row per device name "
     "and organization)"),
    ("contacts", "organization,email\nAcme MSP,a@msp.example\nAcme MSP,A@MSP.example\n", (),
     "contacts.csv:3: contact 'a@msp.example' of 'Acme MSP' is on line 2 already"),
])
def test_the_same_natural_key_twice_names_the_key_and_both_lines_and_imports_nothing(
        tmp_path, config, capsys, kind, text, options, expected):
    err = imported(config, capsys, tmp_path, kind, text, *options, expect=2)
    assert expected in err
    assert err.rstrip().endswith("nothing was imported")
    nothing_imported(tmp_path)


@pytest.mark.parametrize(("text", "options", "expected"), [
    ("name,organization\nPC1,Acme MSP\nPC2,Nobody Inc\n", (),
     "devices.csv:3: organization 'Nobody Inc' does not exist; import organizations first"),
    ("Host,Customer\nPC1,100\nPC2,999\n",
     ("--column", "Host=name", "--column", "Customer=organization", "--organization-by",
      "Kaseya Customer ID"),
     "devices.csv:3: organization '999' does not exist: no organization has Kaseya Customer "
     "ID '999'"),
])
def test_an_unknown_organization_names_the_line_and_the_value_and_imports_nothing(
        tmp_path, config, capsys, text, options, expected):
    imported(config, capsys, tmp_path, "organizations", ORGS)
    err = imported(config, capsys, tmp_path, "devices", text, *options, expect=2)
    assert expected in err
    assert rows(tmp_path, "SELECT count(*) FROM device") == [(0,)]


def test_every_bad_row_is_named_at_once_up_to_twenty(tmp_path, config, capsys):
    text = "name,organization\n" + "".join(f"PC{n},Nobody\n" for n in range(25))
    err = imported(config, capsys, tmp_path, "devices", text, expect=2)
    assert "devices.csv:2: organization 'Nobody'" in err
    assert "devices.csv:21: organization 'Nobody'" in err
    assert "devices.csv:22:" not in err
    assert "... and 5 more rows like these" in err


@pytest.mark.parametrize(("options", "expected"), [
    (("--column", "Hostname=name"), "no column gives 'organization'"),
    (("--column", "Hostnme=name", "--column", "Site=organization"),
     "--column 'Hostnme=name': the file has no column 'Hostnme' (did you mean 'Hostname'?)"),
    (("--column", "Hostname=colour", "--column", "Site=organization"),
     "--column 'Hostname=colour': 'colour' is not a field of devices (expected name, "
     "organization or a UDF label: '<source> Device ID' or '<source> Agent GUID')"),
    (("--column", "Hostname=name", "--column", "Site=name"),
     "--column 'Site=name': 'name' is given by another column too"),
    (("--column", "Hostname", "--column", "Site=organization"),
     "--column 'Hostname': expected \"HEADER=FIELD\""),
    (("--column", "Hostname=name", "--column", "Site=organization", "--organization-by",
      "Kaseya Device ID"), "--organization-by 'Kaseya Device ID': not an organization UDF"),
    ((), "devices.csv:1: unknown column 'Hostname' (expected name, organization or a UDF label"),
])
def test_a_bad_mapping_is_refused_saying_what_to_fix(tmp_path, config, capsys, options,
                                                     expected):
    err = imported(config, capsys, tmp_path, "devices", "Hostname,Site,Seen\nPC1,Acme MSP,x\n",
                   *options, expect=2)
    assert expected in err
    nothing_imported(tmp_path)


@pytest.mark.parametrize(("kind", "text", "expected"), [
    ("organizations", "name,Kaseya Customer ID\nA,1\n,2\n", "organizations.csv:3: name is empty"),
    ("devices", "name,organization\nPC1,Acme MSP\nPC2,\n", "devices.csv:3: organization is empty"),
    ("contacts", "organization,first_name,email\nAcme MSP,A,a@msp.example\nAcme MSP,B,b.msp\n",
     "contacts.csv:3: email 'b.msp' is not an e-mail address"),
    ("contacts", "organization,first_name,email\nAcme MSP,,\n",
     "contacts.csv:2: a contact needs an email or a name"),
])
def test_a_bad_row_is_refused_with_its_line(tmp_path, config, capsys, kind, text, expected):
    assert expected in imported(config, capsys, tmp_path, kind, text, expect=2)
    nothing_imported(tmp_path)


def test_a_bad_file_is_refused_before_the_database_is_opened(tmp_path, config, capsys):
    imported(config, capsys, tmp_path, "devices", "name;organization,x\nA;1,2\n", expect=2)
    assert not (tmp_path / "tickets.db").exists()


# -- dry run, changes, idempotence ------------------------------------------------------------

def _directory(tmp_path) -> object:
    """The directory as stored: the SQLite file's bytes, or PostgreSQL's rows."""
    if (tmp_path / "tickets.db").exists():
        return (tmp_path / "tickets.db").read_bytes()
    return [rows(tmp_path, f"SELECT * FROM {table} ORDER BY id")
            for table in ("organization", "device", "contact", "udf_definition", "udf_value")]


def test_a_dry_run_prints_what_would_change_field_by_field_and_writes_nothing(
        tmp_path, config, capsys):
    imported(config, capsys, tmp_path, "organizations", ORGS)
    imported(config, capsys, tmp_path, "devices",
             "name,organization,Kaseya Device ID\nPC1,Northwind Traders,1\nPC2,Contoso Ltd,2\n")
    before = _directory(tmp_path)
    text = ("name,organization,Kaseya Device ID,Kaseya Agent GUID\n"
            "PC1,Northwind Traders,1,\nPC2,Contoso Ltd,22,g-2\nPC3,Contoso Ltd,3,\n")
    out = imported(config, capsys, tmp_path, "devices", text, "--dry-run")
    assert "devices (dry run, nothing written): 1 to add, 1 to change, 1 unchanged" in out
    assert ("line 3: change device 'PC2' of 'Contoso Ltd': Kaseya Device ID '2' → '22', "
            "Kaseya Agent GUID None → 'g-2'") in out
    assert "line 4: add device 'PC3' of 'Contoso Ltd': name 'PC3', Kaseya Device ID '3'" in out
    assert _directory(tmp_path) == before
    assert not (tmp_path / "tickets.db-wal").exists()
    out = imported(config, capsys, tmp_path, "devices", text)
    assert "devices: 1 added, 1 changed, 1 unchanged" in out
    assert "devices: 0 added, 0 changed, 3 unchanged" in \
        imported(config, capsys, tmp_path, "devices", text)


def test_a_dry_run_without_a_database_plans_against_an_empty_one_and_creates_none(
        tmp_path, config, capsys):
    out = imported(config, capsys, tmp_path, "organizations", ORGS, "--dry-run")
    assert "2 to add" in out
    assert not (tmp_path / "tickets.db").exists()


def test_json_lists_every_change(tmp_path, config, capsys):
    text = "name,Kaseya Customer ID\n" + "".join(f"Client {n},{n}\n" for n in range(15))
    out = imported(config, capsys, tmp_path, "organizations", text, "--json")
    shown = json.loads(out)
    assert (shown["added"], shown["changed"], shown["unchanged"], shown["rows"]) == (15, 0, 0, 15)
    assert shown["encoding"] == "UTF-8" and shown["delimiter"] == ","
    assert len(shown["changes"]) == 15
    assert shown["changes"][0] == {"line": 2, "action": "add", "what": "organization 'Client 0'",
                                   "fields": [{"field": "name", "old": None, "new": "Client 0"},
                                              {"field": "Kaseya Customer ID", "old": None,
                                               "new": "0"}]}
    text_out = imported(config, capsys, tmp_path, "organizations", text.replace(",", ";"))
    assert "... and 5 more (--json lists all)" not in text_out  # unchanged: nothing listed
    assert "0 added, 0 changed, 15 unchanged" in text_out


def test_only_mapped_columns_are_read_and_an_empty_udf_cell_leaves_the_udf(tmp_path, config,
                                                                           capsys):
    imported(config, capsys, tmp_path, "organizations", ORGS)
    text = "Host,name,Customer,Device\nPC1,not this one,100,7\n"
    options = ("--column", "Host=name", "--column", "Customer=organization", "--column",
               "Device=Kaseya Device ID", "--organization-by", "Kaseya Customer ID")
    out = imported(config, capsys, tmp_path, "devices", text, *options)
    assert "ignored columns: 'name'" in out
    assert devices(tmp_path) == [("Northwind Traders", "PC1")]
    imported(config, capsys, tmp_path, "devices", text.replace(",7\n", ",\n"), *options)
    assert ("Kaseya Device ID", "7") in udfs(tmp_path)


def test_organizations_matched_by_their_rmm_id_are_renamed_and_adopted_by_name(
        tmp_path, config, capsys):
    imported(config, capsys, tmp_path, "organizations", "name\nNorthwind Traders\n")
    options = ("--organization-by", "Kaseya Customer ID")
    out = imported(config, capsys, tmp_path, "organizations", ORGS, *options)
    assert "1 added, 1 changed" in out  # Northwind had no id yet: it is the one meant
    renamed = ORGS.replace("Northwind Traders", "Northwind Traders Inc.")
    out = imported(config, capsys, tmp_path, "organizations", renamed, *options)
    assert ("change organization 'Northwind Traders Inc.' (Kaseya Customer ID '100'): name "
            "'Northwind Traders' → 'Northwind Traders Inc.'") in out
    assert rows(tmp_path, "SELECT name FROM organization WHERE NOT is_local ORDER BY id") == [
        ("Northwind Traders Inc.",), ("Contoso Ltd",)]
    taken = "name,Kaseya Customer ID\nContoso Ltd,300\n"
    assert "organization name 'Contoso Ltd' is taken by another organization (the one with " \
           "Kaseya Customer ID '200')" in imported(config, capsys, tmp_path, "organizations",
                                                  taken, *options, expect=2)
    # nor may an organization found by its id be renamed to another one's name
    assert "organization name 'Contoso Ltd' is taken by another organization" in imported(
        config, capsys, tmp_path, "organizations", "name,Kaseya Customer ID\nContoso Ltd,100\n",
        *options, expect=2)


def test_the_msps_own_organization_gets_its_udfs_like_any_other(tmp_path, config, capsys):
    text = "name,Kaseya Customer ID\nAcme MSP,1\n"
    assert "organizations: 0 added, 1 changed, 0 unchanged" in imported(
        config, capsys, tmp_path, "organizations", text)
    assert "organizations: 0 added, 0 changed, 1 unchanged" in imported(
        config, capsys, tmp_path, "organizations", text)
    assert rows(tmp_path, "SELECT entity_id FROM udf_value") == [(0,)]


def test_contacts_change_only_the_fields_the_file_gives(tmp_path, config, capsys):
    imported(config, capsys, tmp_path, "contacts",
             "organization,first_name,last_name,email,email2\nAcme MSP,Ann,Lee,ann@msp.example,"
             "ann@home.example\n")
    out = imported(config, capsys, tmp_path, "contacts",
                   "Org;Mail;Surname\nAcme MSP;ANN@msp.example;Lee-Smith\n", "--column",
                   "Org=organization", "--column", "Mail=email", "--column", "Surname=last_name")
    assert "line 2: change contact 'ann@msp.example' of 'Acme MSP': last_name 'Lee' → " \
           "'Lee-Smith'" in out
    assert rows(tmp_path, "SELECT first_name, last_name, email, email2 FROM contact") == [
        ("Ann", "Lee-Smith", "ann@msp.example", "ann@home.example")]

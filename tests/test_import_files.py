"""`poller import` reads files as RMMs and spreadsheets write them: the README's recipe for each
RMM run against a fixture of its shape, and each encoding, separator and file shape."""

from __future__ import annotations

import codecs
import re
import shlex
from pathlib import Path

import pytest

from poller.errors import ImportFileError
from poller.store.csvfile import SAMPLE_CHARS, read_table
from testkit.importing import devices, poller, rows, settings_file, udfs, write

ROOT = Path(__file__).resolve().parent.parent
RMM = ROOT / "fixtures" / "rmm"


@pytest.fixture
def config(tmp_path):
    return settings_file(tmp_path)


# -- the README's recipes ---------------------------------------------------------------------

def recipes():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### RMM exports", 1)[1].split("\n## ", 1)[0]
    found = {}
    for name, block in re.findall(r"\*\*([^*]+)\*\*.*?```sh\n(.*?)```", section, re.S):
        found[name] = [shlex.split(line) for line in block.splitlines()
                       if line.startswith("poller import")]
    return found


def test_readme_has_a_recipe_per_rmm():
    assert sorted(recipes()) == ["Datto RMM", "Kaseya VSA", "N-able N-central", "NinjaOne"]


@pytest.mark.parametrize("rmm", sorted(recipes()))
def test_each_readme_recipe_imports_its_rmm_export_with_one_line_per_file(
        tmp_path, config, capsys, rmm):
    for words in recipes()[rmm]:
        assert words[:2] == ["poller", "import"]
        kind, file, *options = words[2:]
        code, out, err = poller(config, capsys, "import", kind, RMM / file, *options)
        assert code == 0, err
        again = poller(config, capsys, "import", kind, RMM / file, *options)[1]
        assert f"{kind}: 0 added, 0 changed, 3 unchanged" in again or \
            f"{kind}: 0 added, 0 changed, 2 unchanged" in again
    names = devices(tmp_path)
    assert len(names) == 3
    assert ("Northwind Traders", "NW-SRV01") in names
    # each device got the RMM's id, and the organization the RMM's customer id
    labels = {label for label, _ in udfs(tmp_path)}
    source = {"Kaseya VSA": "Kaseya", "Datto RMM": "Datto", "NinjaOne": "NinjaOne",
              "N-able N-central": "N-central"}[rmm]
    assert {f"{source} Customer ID", f"{source} Device ID"} <= labels


def test_the_kaseya_recipe_reads_bom_semicolons_and_crlf_and_ignores_the_rest(
        tmp_path, config, capsys):
    (orgs, agents) = recipes()["Kaseya VSA"]
    poller(config, capsys, "import", *orgs[2:3], RMM / orgs[3], *orgs[4:])
    out = poller(config, capsys, "import", "devices", RMM / agents[3], *agents[4:])[1]
    assert "UTF-8 with BOM, ';'-separated, 3 rows" in out
    assert "ignored columns: 'Operating System', 'Last Check-in'" in out
    assert ("Kaseya Agent GUID", "903311826650417") in udfs(tmp_path)
    assert ("Contoso Ltd", "CT-DC01") in devices(tmp_path)


def test_the_ninjaone_recipe_reads_windows_1252_and_says_so(tmp_path, config, capsys):
    for words in recipes()["NinjaOne"]:
        out = poller(config, capsys, "import", words[2], RMM / words[3], *words[4:])[1]
        assert re.search(r"Windows-1252 \(not UTF-8: byte 0xe9 on line \d\), ','-separated", out)
    assert ("Café Müller GmbH", "KASSE-01") in devices(tmp_path)


def test_the_ncentral_recipe_reads_utf16_tab_separated(tmp_path, config, capsys):
    table = read_table(RMM / "n-central-devices.txt")
    assert (table.encoding, table.delimiter) == ("UTF-16", "\t")
    assert table.rows[0] == (2, ("1987654321", "NW-SRV01", "50", "Northwind Traders",
                                 "Servers - Windows"))


def test_the_datto_recipe_reads_quoted_line_breaks_and_counts_lines_as_an_editor_does():
    table = read_table(RMM / "datto-rmm-devices.csv")
    assert [line for line, _ in table.rows] == [2, 4, 5]
    assert table.rows[0][1][4] == "File server,\nrack 2"
    assert table.rows[2][1][4] == 'Domain controller "DC01"'


# -- file shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "encoding", "delimiter"), [
    (b"name;Kaseya Customer ID\r\nA;1\r\n", "UTF-8", ";"),
    (codecs.BOM_UTF8 + b"name,Kaseya Customer ID\nA,1\n", "UTF-8 with BOM", ","),
    (b"name\tKaseya Customer ID\nA\t1\n", "UTF-8", "\t"),
    (codecs.BOM_UTF16_BE + "name;Kaseya Customer ID\nA;1\n".encode("utf-16-be"), "UTF-16",
     ";"),
    ("name;Kaseya Customer ID\nCafé;1\n".encode("cp1252"),
     "Windows-1252 (not UTF-8: byte 0xe9 on line 2)", ";"),
    # commas inside values do not make it comma-separated: they do not split the header
    (b"name;Kaseya Customer ID\nClient, Inc.;1\nOther, Ltd;2\n", "UTF-8", ";"),
    # one column: nothing to separate
    (b"name\nA\n", "UTF-8", ","),
    # Excel's line that names the separator
    (b"sep=;\r\nname,x;Kaseya Customer ID\r\nA;1\r\n", "UTF-8", ";"),
])
def test_encoding_and_separator_are_detected(tmp_path, data, encoding, delimiter):
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    table = read_table(path)
    assert (table.encoding, table.delimiter) == (encoding, delimiter)
    assert table.rows[0][1][0] in ("A", "Café", "Client, Inc.")
    assert table.rows[0][0] == (3 if data.startswith(b"sep=") else 2)  # as an editor shows it


def test_short_rows_are_padded_and_empty_trailing_cells_and_blank_lines_are_fine(tmp_path):
    path = write(tmp_path, "in.csv", "name,organization,Kaseya Device ID\n\nPC1,Acme MSP\n"
                                     "PC2,Acme MSP,7,,\n")
    table = read_table(path)
    assert table.rows == ((3, ("PC1", "Acme MSP", "")), (4, ("PC2", "Acme MSP", "7")))


def test_the_separator_is_detected_from_the_start_of_a_large_file_only(tmp_path):
    lines = ["name;Kaseya Customer ID"] + [f"Client {n};{n}" for n in range(60_000)]
    path = write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    assert path.stat().st_size > 10 * SAMPLE_CHARS
    table = read_table(path)
    assert (table.delimiter, len(table.rows), table.rows[-1]) == (
        ";", 60_000, (60_001, ("Client 59999", "59999")))


@pytest.mark.parametrize(("data", "expected"), [
    (b"name,Kaseya Customer ID\nA,1,2\n", "in.csv:2: 3 cells, but the header names 2 columns"),
    (b"name;x,y\nA;1,2\n", "cannot tell the separator: ',' and ';' both split every line"),
    (b"name\nA\x81\x8d\n", "neither UTF-8 (byte 0x81 on line 2) nor Windows-1252"),
    (b"", "in.csv: the file is empty"),
    (b"name\n\"A\x00\"\n", "in.csv:2: a NUL character"),
    ("name\nA\n".encode("utf-16-le"), "in.csv:1: a NUL character: not a text file, or UTF-16"),
    (b"name\n\"unclosed\n", "in.csv:2: not readable as CSV"),
])
def test_a_file_that_cannot_be_read_as_a_table_is_refused_saying_where(tmp_path, data,
                                                                       expected):
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    with pytest.raises(ImportFileError) as info:
        read_table(path)
    assert expected in str(info.value)


def test_delimiter_option_settles_an_ambiguous_file(tmp_path, config, capsys):
    path = write(tmp_path, "orgs.csv", "name;x,Kaseya Customer ID\nA;1,2\n")
    assert poller(config, capsys, "import", "organizations", path)[0] == 2
    code, out, err = poller(config, capsys, "import", "organizations", path, "--delimiter", ",")
    assert code == 2 and "unknown column 'name;x'" in err
    code, out, _ = poller(config, capsys, "import", "organizations", path, "--delimiter", ",",
                          "--column", "name;x=name", "--column",
                          "Kaseya Customer ID=Kaseya Customer ID")
    assert code == 0 and "1 added" in out
    assert rows(tmp_path, "SELECT name FROM organization WHERE NOT is_local") == [("A;1",)]

"""Reading a CSV file as spreadsheet programs and RMMs write it: UTF-8 with or without a byte-order
mark, UTF-16 with one (Excel's "Unicode text"), else Windows-1252; separated by `,` `;` or tab
(detected from the start of the file, or named by Excel's `sep=;` line); quoted fields with
line breaks; CRLF or LF."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from poller.errors import ImportFileError

MAX_FILE_BYTES = 256 * 1024 * 1024
DELIMITERS = {",": "','", ";": "';'", "\t": "tab"}
# Separator detection reads at most this much of the file, and this many records of it.
SAMPLE_CHARS = 64 * 1024
SAMPLE_RECORDS = 50


@dataclass(frozen=True)
class Table:
    """A CSV file read: its header (stripped), its rows as (first line, cells), how it was
    decoded and what separates its cells."""

    path: Path
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]
    encoding: str
    delimiter: str

    def describe(self) -> str:
        """Return how the file was read, e.g. "UTF-8 with BOM, ';'-separated, 12 rows"."""
        return f"{self.encoding}, {DELIMITERS[self.delimiter]}-separated, {len(self.rows)} rows"


def read_table(path: Path, delimiter: str | None = None) -> Table:
    """Read PATH; DELIMITER None: detect it. Raise ImportFileError saying what is wrong (and
    where) when the file cannot be read as a CSV table with a header line."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(f"{path}: larger than {MAX_FILE_BYTES // 1024 // 1024} MB; split it")
    text, encoding = _decode(path, data)
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ImportFileError(f"{path}:{line}: a NUL character: not a text file, or UTF-16 "
                              "without a byte-order mark; save it as 'CSV UTF-8'")
    if not text.strip():
        raise ImportFileError(f"{path}: the file is empty; the first line must name columns")
    first = text.partition("\n")[0].rstrip("\r")
    if len(first) == 5 and first.lower().startswith("sep=") and first[4] in DELIMITERS:
        # Excel's line naming the separator: it wins; blank, it keeps the line numbers
        delimiter = delimiter or first[4]
        text = text[len(first):]
    if delimiter is None:
        delimiter = _detect_delimiter(path, text)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, tuple[str, ...]]] = []
    header: tuple[str, ...] | None = None
    line = 1
    try:
        for record in records:
            start, line = line, records.line_num + 1
            cells = tuple(cell.strip() for cell in record)
            if not any(cells):
                continue
            if header is None:
                header = cells
            else:
                rows.append((start, _fit(path, start, cells, len(header))))
    except csv.Error as exc:
        raise ImportFileError(f"{path}:{line}: not readable as CSV: {exc}") from None
    assert header is not None  # the text is not blank
    return Table(path, header, tuple(rows), encoding, delimiter)


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    if data.startswith(codecs.BOM_UTF8):
        return _strict(path, data[3:], "utf-8"), "UTF-8 with BOM"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(path, data, "utf-16"), "UTF-16"
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError as exc:
        where = data[:exc.start].count(b"\n") + 1
        bad = data[exc.start:exc.start + 1].hex()
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"{path}: neither UTF-8 (byte 0x{bad} on line {where}) nor Windows-1252 (byte "
            f"0x{data[exc.start:exc.start + 1].hex()} on line {line}): save it as 'CSV UTF-8'"
        ) from None
    return text, f"Windows-1252 (not UTF-8: byte 0x{bad} on line {where})"


def _strict(path: Path, data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path}: starts like {codec.upper()} (byte-order mark) but is not: "
                              f"byte {exc.start + 1} is invalid") from None


def _detect_delimiter(path: Path, text: str) -> str:
    """Return the separator that splits the header into the most columns and every sampled
    record into as many; refuse when two separators both do (give --delimiter)."""
    sample = text[:SAMPLE_CHARS]
    cut = len(text) > SAMPLE_CHARS
    widths: dict[str, int] = {}
    consistent: list[str] = []
    for candidate in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(sample, newline=""),
                                             delimiter=candidate) if any(c.strip() for c in r)]
        except csv.Error:
            continue
        records = records[:SAMPLE_RECORDS + 1] if not cut else records[:-1][:SAMPLE_RECORDS + 1]
        if not records:
            continue
        widths[candidate] = len(records[0])
        if widths[candidate] > 1 and all(len(r) == widths[candidate] for r in records):
            consistent.append(candidate)
    if len(consistent) == 1:
        return consistent[0]
    if len(consistent) > 1:
        shown = " and ".join(DELIMITERS[d] for d in consistent)
        raise ImportFileError(f"{path}: cannot tell the separator: {shown} both split every "
                              "line into the same number of columns; give --delimiter")
    if not widths or max(widths.values()) == 1:
        return ","  # one column: nothing to separate
    return max(widths, key=lambda d: widths[d])  # rows that do not fit are named when read


def _fit(path: Path, line: int, cells: tuple[str, ...], width: int) -> tuple[str, ...]:
    """Return CELLS as wide as the header: missing cells are empty (spreadsheets drop empty
    cells at the end of a row), extra cells must be empty."""
    if len(cells) > width and any(cells[width:]):
        raise ImportFileError(f"{path}:{line}: {len(cells)} cells, but the header names {width} "
                              "columns (a separator in an unquoted value?)")
    return cells[:width] + ("",) * (width - len(cells))

"""`mirror batch`: enrich a list of SIRENs / SIRETs with the mirror's columns, in one SQL join.

Input: one identifier per line (a blank line is an input row too: `invalid`), or a CSV file and the
name of its identifier column; a CSV given without the name has its header line and identifier column
detected (`read_input`), or is refused with what to pass. Spaces inside identifiers are ignored
("552 100 554"). Every input row gives exactly one output row, in input order (duplicates kept), with
the original `input` value and a `status`:

- `ok`: found, and diffusible;
- `non_diffusible`: found, but not diffusible by the rule of every path (mirror.serve.documents.is_diffusible:
  at level unite-legale the unit is P; at level etablissement the établissement or its unit is P): some of
  its data are masked (or, with --include-non-diffusible, shown under the legal restriction). `mirror get`
  answers 451 for it without --diffusibles / --non-diffusables;
- `doublon`: the SIREN (or the SIREN of the SIRET) was closed as a doublon (StockDoublons): the row is the
  closed unit's as the register holds it; `mirror get` answers 301 naming the replacing SIREN;
- `not_found`: a valid identifier absent from the mirror;
- `invalid`: not 9 or 14 digits, or fails the Luhn check (La Poste exception included).

JSON Lines answer at the document level of `mirror get` (a SIREN the unit's document, a SIRET the
établissement's) with the same statuses: a /diffusibles/ document of a partially diffusible resource is
`non_diffusible`, as its CSV row is.

Level unite-legale: a SIRET gives its unit's row. Level etablissement: a SIREN gives its siège's row.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mirror.core.changes import COLUMNS
from mirror.core.errors import BadInput, MirrorError
from mirror.core.faults import crash_after_rows
from mirror.core.identifiers import LA_POSTE_SIREN
from mirror.core.sql import ident, literal, render
from mirror.export.exporter import (
    Query,
    add_libelles,
    build_source,
    check_columns,
    check_delimiter,
    delimiter_for,
    export_error,
    format_for,
    progress_bar,
    write_output,
    writing,
)
from mirror.export.output import commit, is_write_error

# Every status of a batch row, CSV and JSON Lines alike (the summary prints them in this order).
STATUSES = ("ok", "non_diffusible", "not_found", "invalid", "doublon")
# Blanks ignored inside identifiers ("552 100 554", a non-breaking or narrow no-break space from a spreadsheet).
BLANK_CHARS = " \t\u00a0\u202f"
_BLANKS = str.maketrans("", "", BLANK_CHARS)


def _read_text(path: Path) -> tuple[str, str]:
    """(text, encoding) of an input file: UTF-8 (BOM or not), else Windows-1252 / Latin-1 (a CSV saved
    by Excel in France); binary content is an error. Identifiers are ASCII, so either decoding gives
    them right, and the other columns' text is kept readable in the output."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read the input file {path}: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise BadInput(f"{path} is not a text file (binary content): give one identifier per line or a CSV")
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding), encoding.replace("-sig", "")
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any byte")  # pragma: no cover


@dataclass
class BatchInput:
    values: list[str]  # raw input values, one per input row, in order
    column: str | None = None  # the CSV column read (given by --column or detected)
    detected: bool = False  # the header line (and column) were found without --column
    header: list[str] | None = None  # the input's own columns (a CSV, or a list with a header line)
    rows: list[list[str]] | None = None  # their values, one list per input row (--keep-columns)
    lines: list[str] | None = None  # a one-column list with a header line: its raw lines (own_rows)

    def own_rows(self) -> list[list[str]] | None:
        """The input's own columns, one list per input row; for a one-column list, made only when asked
        (--keep-columns): a million one-item lists cost half a second of a million-row batch."""
        if self.rows is None and self.lines is not None:
            self.rows = [[line] for line in self.lines]
        return self.rows


# Field delimiters a CSV input may use.
CSV_DELIMITERS = ",;\t|"
# Header names of a one-column list (compared lowercased, accents and non-letters removed).
_HEADER_WORDS = ("siren", "siret", "identifiant", "id", "numero", "num")
_SNIFF_CHARS = 65536
_SNIFF_ROWS = 1000


def _lines(text: str) -> list[str]:
    """The lines of a text (\\n, \\r\\n or \\r), every one, blank lines included: one input row each."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the last line's newline ends it, it does not start another
        lines.pop()
    return lines


def _digits(value: str) -> str:
    return value.translate(_BLANKS)


def _is_identifier(value: str) -> bool:
    """9 or 14 digits once blanks are removed, or FR and 11 digits (a VAT number); the checks are classify's."""
    v = _digits(value)
    if len(v) == 13 and v[:2].upper() == "FR":
        v = v[2:]
        return v.isascii() and v.isdigit()
    return v.isascii() and v.isdigit() and len(v) in (9, 14)


def _word(name: str) -> str:
    """A header name lowercased, accents and anything but letters and digits removed."""
    decomposed = unicodedata.normalize("NFKD", name.lower())
    return "".join(c for c in decomposed if c.isascii() and c.isalnum())


def _dialect(text: str):
    try:
        return csv.Sniffer().sniff(text[:_SNIFF_CHARS], delimiters=CSV_DELIMITERS)
    except csv.Error:
        return csv.excel


def _csv_column(path: Path, text: str, column: str | int) -> BatchInput:
    """One column of a CSV text, named (case-insensitive) or by index, with every column's values (the
    input's own columns). A blank line is a row with an empty value (invalid): the output keeps the
    input's rows."""
    try:
        reader = csv.reader(io.StringIO(text, newline=""), _dialect(text))
        header = next(reader, None)
        if header is None:
            raise MirrorError(f"{path} is empty")
        names = [h.strip() for h in header]
        if isinstance(column, int):
            idx = column
        else:
            lowered = [h.lower() for h in names]
            if column.lower() not in lowered:
                raise BadInput(f"no column {column!r} in {path.name} (columns: {', '.join(names)})")
            idx = lowered.index(column.lower())
        rows = [(row + [""] * (len(names) - len(row)))[: len(names)] for row in reader]
        return BatchInput([row[idx].strip() for row in rows], names[idx], header=names, rows=rows)
    except csv.Error as exc:
        raise BadInput(f"cannot read {path.name} as CSV (line {reader.line_num}: {exc})") from None


def _detect_column(path: Path, text: str, first: str) -> int:
    """The identifier column of a CSV given without --column: the one column named like siren / siret,
    else the one column holding mostly 9- or 14-digit values. Anything else: say what to pass."""
    rows = list(
        itertools.islice(
            csv.reader(io.StringIO(text[:_SNIFF_CHARS], newline=""), _dialect(text)), _SNIFF_ROWS
        )
    )
    header = [h.strip() for h in rows[0]] if rows else []
    shown = ", ".join(header)
    if any(_is_identifier(h) for h in header):
        raise BadInput(
            f"{path.name} looks like a CSV without a header line ({first[:60]!r}): give one identifier per "
            "line, or add a header line and pass --column NAME"
        )
    named = [i for i, h in enumerate(header) if "siren" in _word(h) or "siret" in _word(h)]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise BadInput(
            f"{path.name} has several identifier columns ({', '.join(header[i] for i in named)}): pass "
            + " or ".join(f"--column {header[i]}" for i in named)
        )
    holding = []
    for i in range(len(header)):
        values = [r[i].strip() for r in rows[1:] if i < len(r) and r[i].strip()]
        if values and sum(map(_is_identifier, values)) * 2 > len(values):
            holding.append(i)
    if len(holding) == 1:
        return holding[0]
    raise BadInput(
        f"{path.name} looks like a CSV (columns: {shown}) and none is clearly the SIREN / SIRET: "
        "pass --column NAME"
    )


def read_input(path: Path, column: str | None = None) -> BatchInput:
    """The raw input values, one per input row, in order: the lines of a text file (blank lines included,
    as invalid rows), or one column of a CSV file (`column`, else detected from its header line)."""
    path = Path(path)
    if not path.is_file():
        raise MirrorError(f"input file {path} not found")
    text, _encoding = _read_text(path)
    if column is not None:
        return _csv_column(path, text, column)
    lines = _lines(text)
    first = lines[0].strip() if lines else ""
    if not first or _digits(first).isdigit():
        return BatchInput([line.strip() for line in lines])
    if any(d in first for d in CSV_DELIMITERS):
        read = _csv_column(path, text, _detect_column(path, text, first))
        read.detected = True
        return read
    word = _word(first)
    if not any(c.isdigit() for c in first) and ("siren" in word or "siret" in word or word in _HEADER_WORDS):
        values = [line.strip() for line in lines[1:]]
        return BatchInput(values, first, detected=True, header=[first], lines=lines[1:])
    return BatchInput([line.strip() for line in lines])


def read_identifiers(path: Path, column: str | None = None) -> list[str]:
    """Raw input values, in order (`read_input`'s)."""
    return read_input(path, column).values


# Luhn, read from the number n two digits at a time (n // 100^m % 100, m from the right): in each pair
# x = 10t + u the tens digit t is the doubled one (2t, minus 9 when t >= 5) and u is kept, so a 14-digit
# number's Luhn sum is 7 look-ups in _LUHN_PAIRS (a SIREN is one with 5 leading zeros, which add nothing);
# _DIGIT_PAIRS gives the plain digit sum of La Poste's SIRETs the same way.
_LUHN_PAIRS = np.array([2 * (x // 10) - 9 * (x // 50) + x % 10 for x in range(100)], np.int64)
_DIGIT_PAIRS = np.array([x // 10 + x % 10 for x in range(100)], np.int64)
_CLASSIFIED = pa.schema(
    [("pos", pa.int64()), ("input", pa.string()), ("siren", pa.string()), ("siret", pa.string()),
     ("valid", pa.bool_())]
)  # fmt: skip


def _pair_sum(numbers: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    total = np.zeros(len(numbers), np.int64)
    for m in range(7):
        total += pairs[numbers // 100**m % 100]
    return total


def classify(values: list[str]) -> pa.Table:
    """Arrow table (pos, input, siren, siret, valid) in input order: siret only for 14-digit inputs; NULL
    ids when invalid.

    The rule of mirror.core.identifiers (is_valid_siren, is_valid_siret, siren_of_tva: the one definition
    for a single identifier; tests/export/test_valid_identifiers.py checks that the two agree) for the whole
    column at once, in Arrow compute and numpy: BLANK_CHARS removed, then 9 or 14 ASCII digits passing Luhn
    (or a La Poste SIRET whose digit sum is a multiple of 5), or a French VAT number (FR, its key, a valid
    SIREN; either case) standing for its SIREN. A third of the time the same rule took in one DuckDB query."""
    raw = pa.array(values, pa.string())
    v, upper, tva = raw, None, None
    lengths = pc.utf8_length(raw)
    if pc.any(pc.match_substring_regex(raw, "[^0-9]")).as_py():  # blanks, VAT numbers, junk: rare
        v = pc.replace_substring_regex(raw, "[" + BLANK_CHARS + "]", "")
        upper = pc.ascii_upper(v)
        tva = pc.match_substring_regex(upper, "^FR[0-9]{11}$")
        v = pc.if_else(tva, pc.utf8_slice_codeunits(v, 4), v)
        lengths = pc.utf8_length(v)
        shaped = pc.match_substring_regex(v, "^([0-9]{9}|[0-9]{14})$")
    else:  # digits only
        shaped = pc.is_in(lengths, pa.array([9, 14], lengths.type))
    numbers = pc.cast(pc.if_else(shaped, v, "0"), pa.int64()).to_numpy()
    long = pc.equal(lengths, 14).to_numpy(zero_copy_only=False)
    ok = _pair_sum(numbers, _LUHN_PAIRS) % 10 == 0
    la_poste = long & pc.starts_with(v, LA_POSTE_SIREN).to_numpy(zero_copy_only=False)
    if la_poste.any():
        ok |= la_poste & (_pair_sum(numbers, _DIGIT_PAIRS) % 5 == 0)
    valid = shaped.to_numpy(zero_copy_only=False) & ok
    if tva is not None and pc.any(tva).as_py():  # the key: (12 + 3 × (SIREN mod 97)) mod 97
        keys = pc.cast(pc.if_else(tva, pc.utf8_slice_codeunits(upper, 2, 4), "0"), pa.int64()).to_numpy()
        is_tva = tva.to_numpy(zero_copy_only=False)
        valid &= ~is_tva | (keys == (12 + 3 * (numbers % 97)) % 97)
    valid_array = pa.array(valid)
    siren = pc.if_else(valid_array, pc.utf8_slice_codeunits(v, 0, 9), pa.scalar(None, pa.string()))
    siret = pc.if_else(pc.and_(valid_array, pa.array(long)), v, pa.scalar(None, pa.string()))
    positions = pa.array(np.arange(len(values), dtype=np.int64))  # not range(...): 0.15 s a million rows
    return pa.Table.from_arrays([positions, raw, siren, siret, valid_array], schema=_CLASSIFIED)


# The columns --changed-since adds (sql/export/batch_changes.sql).
CHANGES_COLUMNS = ("changes_count", "changes_kinds", "changes_last_day", "changes")
_CHANGES_TABLE = "_mirror_batch_changes"


def build_batch_query(
    con,
    level: str,
    columns: list[str],
    include_non_diffusible: bool,
    input_name: str,
    dedupe: bool = True,
    kept: list[tuple[str, str]] | None = None,
    with_changes: bool = False,
    ordered: bool = True,
) -> Query:
    """One SELECT joining the registered input table with the export source, in input order (`ordered`;
    in no given order otherwise, for a count).

    `dedupe=False` leaves out the one-row-per-input window (a sort of every output row): for a mirror
    whose keys are known to match each input row at most once (`_matches_once`), where it changes nothing.
    `kept`: (input table column, output name) of the input file's own columns, written first instead of
    `input`; `with_changes`: the CHANGES_COLUMNS of the registered changes table, per row's key."""
    from mirror.serve.documents import DIFFUSIBLE_SQL

    source = build_source(con, level, include_non_diffusible)
    statut_ul = "statutDiffusionUniteLegale"
    if level == "etablissement":  # the row carries the établissement and its unit's columns: both decide
        statuts = ["statutDiffusionEtablissement", statut_ul]
        diffusible = DIFFUSIBLE_SQL.format(statut=f'src."{statuts[0]}"', statut_ul=f'src."{statut_ul}"')
    else:
        statuts = [statut_ul]
        diffusible = DIFFUSIBLE_SQL.format(statut=f'src."{statut_ul}"', statut_ul="NULL")
    needed = set(columns) | {source.key, *statuts}
    if level == "etablissement":
        ul_view = source.ul_view
        # A SIREN row gives its siège. The condition is one equality (NULL for a SIRET row, which matches
        # nothing): `i.siret IS NULL AND h.siren = i.siren` made DuckDB run a nested-loop join, input rows
        # times units (200,000 SIRETs took 13 minutes).
        keys = (
            f'SELECT i.*, coalesce(i.siret, h.siret_siege) AS _key FROM "{input_name}" i '
            f'LEFT JOIN (SELECT siren, siren || nicSiegeUniteLegale AS siret_siege FROM "{ul_view}") h '
            "ON h.siren = CASE WHEN i.siret IS NULL THEN i.siren END"
        )
    else:
        keys = f'SELECT i.*, i.siren AS _key FROM "{input_name}" i'
    # A SIREN closed as a doublon (StockDoublons), and every SIRET of it, as `mirror get` decides (301).
    # IN, not a LEFT JOIN of the distinct doublons: DuckDB built that join's hash table on the input rows
    # (a million) to probe it with the few doublons, 0.1 s of a million-row batch.
    keys = (
        f"SELECT k0.*, coalesce(k0.siren IN (SELECT sirenDoublon FROM doublons), false) AS _doublon "
        f"FROM ({keys}) k0"
    )
    # The precedence of `mirror get`: 422, then 301 (doublon), 404, 451 (not diffusible), 200.
    status = (
        "CASE WHEN NOT k.valid THEN 'invalid' "
        "WHEN k._doublon THEN 'doublon' "
        f"WHEN src.\"{source.key}\" IS NULL THEN 'not_found' "
        f"WHEN NOT {diffusible} THEN 'non_diffusible' ELSE 'ok' END"
    )
    # Exactly one row per input row even if the mirror held a key twice (a damaged snapshot): the
    # most recently processed version, then the first in the source's order.
    latest = (
        "dateDernierTraitementEtablissement"
        if level == "etablissement"
        else "dateDernierTraitementUniteLegale"
    )
    order = f'src."{latest}" DESC NULLS LAST' if latest in source.columns else "1"
    if latest in source.columns:
        needed.add(latest)
    select = ", ".join(f'src."{c}"' for c in columns)
    qualify = f"QUALIFY row_number() OVER (PARTITION BY k.pos ORDER BY {order}) = 1 " if dedupe else ""
    first = ", ".join(f"k.{ident(name)} AS {ident(shown)}" for name, shown in kept) if kept else "k.input"
    joined, added = "", []
    if with_changes:
        found = f'src."{source.key}" IS NOT NULL'
        added = [
            f"CASE WHEN {found} THEN coalesce(ch.changes_count, 0) END AS changes_count",
            "ch.changes_kinds", "ch.changes_last_day",
            f"CASE WHEN {found} THEN coalesce(ch.changes, '[]') END AS changes",
        ]  # fmt: skip
        row = "{" + ", ".join(f"{literal(c)}: {ident(c)}" for c in COLUMNS) + "}"
        aggregate = render("export/batch_changes.sql", keys=f"({keys})", changes=_CHANGES_TABLE, row=row)
        joined = f"LEFT JOIN ({aggregate}) ch ON ch._changes_key = k._key "
    sql = (
        f"SELECT {first}, {status} AS status{', ' + select if select else ''}"
        f"{''.join(', ' + a for a in added)} "
        f'FROM ({keys}) k LEFT JOIN ({source.select_sql(needed)}) src ON src."{source.key}" = k._key '
        f"{joined}{qualify}{'ORDER BY k.pos' if ordered else ''}"
    )
    names = [shown for _name, shown in kept] if kept else ["input"]
    return Query(sql, [], [*names, "status", *columns, *(CHANGES_COLUMNS if with_changes else ())])


def _status_counts(
    con, level: str, include_non_diffusible: bool, input_name: str, rows: int
) -> tuple[dict, bool]:
    """(rows per status, whether every input row matched the mirror at most once), from one narrow join.

    Without the window, a key the mirror held twice (a damaged snapshot) gives an input row two rows: the
    total then exceeds the input's row count, and the counts are taken again with the window."""
    light = build_batch_query(con, level, [], include_non_diffusible, input_name, dedupe=False, ordered=False)
    counts = dict(con.execute(f"SELECT status, count(*) FROM ({light.sql}) GROUP BY status").fetchall())
    if sum(counts.values()) == rows:
        return counts, True
    light = build_batch_query(con, level, [], include_non_diffusible, input_name, ordered=False)
    return dict(con.execute(f"SELECT status, count(*) FROM ({light.sql}) GROUP BY status").fetchall()), False


def batch(
    con,
    input_path: Path,
    out: Path,
    *,
    level: str = "unite-legale",
    column: str | None = None,
    columns: list[str] | None = None,
    with_libelles: bool = False,
    fmt: str | None = None,
    include_non_diffusible: bool = False,
    delimiter: str | None = None,
    split_sheets: bool = False,
    document: str = "v3",
    progress: bool = False,
    keep_columns: bool = False,
    changed_since: date | None = None,
    data_dir: Path | None = None,
) -> dict:
    """Enriches the identifiers of `input_path` into `out`; returns a summary with the count per status.

    keep_columns: the input file's own columns first, instead of `input` (JSON Lines: an `input` object);
    changed_since: the changes of each row since that day (mirror.serve.changes, over `data_dir`): the
    CHANGES_COLUMNS (JSON Lines: a `changes` array)."""
    out = Path(out)
    fmt = format_for(out, fmt)
    columns = check_columns(columns)
    rows = read_input(input_path, column)
    read = {"column": rows.column, "detected": rows.detected}
    if keep_columns and rows.header is None:
        raise BadInput(
            f"--keep-columns carries the columns of a CSV input: {Path(input_path).name} has none (one "
            "identifier per line, no header line)"
        )
    table = classify(rows.values)
    changed = _changes_of(con, data_dir, table, level, changed_since) if changed_since else None
    if fmt == "jsonl":
        summary = _batch_documents(
            con,
            rows,
            table,
            input_path,
            out,
            document,
            include_non_diffusible,
            progress,
            keep_columns,
            changed,
        )
        return {**summary, "input": read}
    delimiter = delimiter_for(fmt, delimiter)
    check_delimiter(delimiter)
    kept = None
    if keep_columns:
        kept = [(f"_keep_{i}", name) for i, name in enumerate(rows.header)]
        for i, (name, _shown) in enumerate(kept):
            table = table.append_column(name, pa.array([r[i] for r in rows.own_rows()], pa.string()))
    input_name = "_mirror_batch_input"
    with writing(con, out, inputs=(Path(input_path),)) as (plan, sb):
        source = build_source(sb, level, include_non_diffusible)
        cols = source.resolve(columns) if columns else list(source.default_columns)
        if with_libelles:
            cols = add_libelles(cols)
        sb.register(input_name, table)
        if changed is not None:
            sb.register(_CHANGES_TABLE, changed)
        counts, once = _status_counts(sb, level, include_non_diffusible, input_name, table.num_rows)
        extra = [c for c in ("latitude", "longitude") if fmt == "geojson" and c not in cols]
        if kept:
            kept = _output_names(kept, ["status", *cols, *extra, *(CHANGES_COLUMNS if changed else ())])
        query = build_batch_query(
            sb,
            level,
            cols + extra,
            include_non_diffusible,
            input_name,
            dedupe=not once,
            kept=kept,
            with_changes=changed is not None,
        )
        summary = write_output(
            sb,
            query,
            plan,
            fmt,
            delimiter=delimiter,
            split_sheets=split_sheets,
            progress=progress,
            level=level,
        )
    summary["statuses"] = {s: counts.get(s, 0) for s in STATUSES}
    summary["level"] = level
    summary["input"] = read
    return summary


def _output_names(kept: list[tuple[str, str]], taken: list[str]) -> list[tuple[str, str]]:
    """The output names of the input's own columns: as in the file, `<name>_input` when the mirror's
    output has a column of that name (or the file has it twice), numbered beyond."""
    used, out = set(taken), []
    for name, shown in kept:
        candidate, n = shown or "column", 1
        while candidate in used:
            candidate = f"{shown or 'column'}_input" + (f"_{n}" if n > 1 else "")
            n += 1
        used.add(candidate)
        out.append((name, candidate))
    return out


def _changes_of(con, data_dir: Path | None, table: pa.Table, level: str, since: date) -> pa.Table:
    """The changes since `since` of the valid identifiers of a classified input (mirror.serve.changes): of
    their SIRENs (a unit and its établissements), and at level etablissement of their SIRETs too."""
    from mirror.serve.changes import changes

    if data_dir is None:
        raise MirrorError("--changed-since needs the data directory of the mirror")
    ids = {s for s in table.column("siren").to_pylist() if s}
    if level == "etablissement":
        ids |= {s for s in table.column("siret").to_pylist() if s}
    return changes(Path(data_dir), since, ids=sorted(ids), con=con)


def _nested(text: str, rows: BatchInput, i: int, keep_columns: bool, changed, changes_of, key: str) -> str:
    """A JSON Lines document with the `input` object and the `changes` array --keep-columns and
    --changed-since add at its top level (the document's own keys unchanged)."""
    doc = json.loads(text)
    if keep_columns:
        doc["input"] = dict(zip(rows.header, rows.own_rows()[i], strict=True))
    if changed is not None:
        doc["changes"] = changes_of(key) if key.isdigit() and len(key) in (9, 14) else []
    return json.dumps(doc, ensure_ascii=False, default=str)


# HTTP status of a document answer -> batch status.
_DOCUMENT_STATUSES = {200: "ok", 451: "non_diffusible", 404: "not_found", 422: "invalid", 301: "doublon"}


def _batch_documents(
    con,
    rows: BatchInput,
    table: pa.Table,
    input_path: Path,
    out: Path,
    document: str,
    include_non_diffusible: bool,
    progress: bool,
    keep_columns: bool = False,
    changed: pa.Table | None = None,
) -> dict:
    """JSON Lines: one API Entreprise document (or its error body: 422, 404, 451, 301) per input row, in order.

    SIRENs (and VAT numbers) give the unit's document, SIRETs the établissement's (mirror.serve.documents,
    one SQL join). keep_columns adds to each line an `input` object (the file's columns), `changed` a
    `changes` array (a SIREN's: its unit's and its établissements'; a SIRET's: its own and its unit's).
    """
    from mirror.serve.documents import iter_documents

    values = rows.values
    counts = dict.fromkeys(STATUSES, 0)
    # a valid identifier as the mirror keys it (a VAT number: its SIREN); the others as given (422)
    cleaned = [
        r["siret"] or r["siren"] or v.translate(_BLANKS)
        for r, v in zip(table.to_pylist(), values, strict=True)
    ]
    by_key: dict[str, list[dict]] = {}
    for change in changed.to_pylist() if changed is not None else []:
        by_key.setdefault(change["identifier"], []).append(change)

    def changes_of(key: str) -> list[dict]:
        if len(key) == 14:
            found = by_key.get(key, []) + by_key.get(key[:9], [])
        else:
            found = [c for ident_, cs in by_key.items() if ident_[:9] == key for c in cs]
        return sorted(
            found, key=lambda c: (c["day"], c["identifier"], c["level"] != "etablissement", c["field"] or "")
        )

    with writing(con, out, inputs=(Path(input_path),)) as (plan, sb):
        try:
            with open(plan.part, "w", encoding="utf-8") as fh, progress_bar(len(values), progress) as bar:
                docs = iter_documents(
                    sb,
                    cleaned,
                    fmt=document,
                    diffusibles=not include_non_diffusible,
                    non_diffusables=include_non_diffusible,
                    as_text=True,
                    with_diffusion=True,
                )
                for n, (_ident, status, text, diffusible) in enumerate(docs, 1):
                    # A /diffusibles/ (or --include-non-diffusible) document of a resource that is not
                    # diffusible is `non_diffusible`, as its CSV row is: the status names the diffusion.
                    name = (
                        "non_diffusible" if diffusible is False else _DOCUMENT_STATUSES.get(status, "invalid")
                    )
                    counts[name] += 1
                    if keep_columns or changed is not None:
                        text = _nested(text, rows, n - 1, keep_columns, changed, changes_of, cleaned[n - 1])
                    fh.write(text.rstrip("\n") + "\n")
                    bar.update(1)
                    crash_after_rows(n)
            crash_after_rows(len(values), final=True)
            commit(plan)
        except MirrorError:
            raise
        except Exception as exc:
            if isinstance(exc, duckdb.Error) or is_write_error(exc):
                raise export_error(exc, plan) from None
            raise
    return {
        "path": plan.shown,
        "format": "jsonl",
        "rows": len(values),
        "statuses": counts,
        "level": "document",
    }

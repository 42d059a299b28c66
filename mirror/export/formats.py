"""The output formats of `mirror export` and `mirror batch`, in one table: the `--format` choices, the
extensions that tell a format, and the writer of each (a function of `mirror.export.exporter`, named
here so that the CLI can list the formats without importing DuckDB).

An extension names one format: `--format` contradicting it (`--format xlsx -o x.csv`) is refused, and
a file without a known extension (`-o -`, `/dev/stdout`, `x.out`) takes `--format` (default: csv for
standard output). `.txt` is plain text: CSV or TSV.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mirror.core.errors import BadInput

STDOUT = "-"  # `-o -`: standard output


@dataclass(frozen=True)
class Format:
    name: str
    label: str  # in messages
    extensions: tuple[str, ...]
    writer: str  # the function of mirror.export.exporter writing it
    binary: bool = False  # never written to a terminal
    delimiter: str | None = None  # CSV-like: the default field delimiter


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("csv", "CSV", (".csv", ".txt"), "_write_copy", delimiter=","),
        Format("tsv", "TSV", (".tsv", ".tab", ".txt"), "_write_copy", delimiter="\t"),
        Format("parquet", "Parquet", (".parquet",), "_write_copy", binary=True),
        Format("jsonl", "JSON Lines", (".jsonl", ".ndjson"), "_write_jsonl"),
        Format("xlsx", "Excel", (".xlsx",), "_write_xlsx", binary=True),
        Format("geojson", "GeoJSON", (".geojson",), "_write_geojson"),
        Format("xml", "XML", (".xml",), "_write_xml"),
    )
}
# Extension -> format: the first format listing it.
EXTENSIONS: dict[str, str] = {}
for _f in FORMATS.values():
    for _ext in _f.extensions:
        EXTENSIONS.setdefault(_ext, _f.name)


def is_stdout(path: Path | str | None) -> bool:
    return path is not None and str(path) == STDOUT


def format_for(path: Path, fmt: str | None) -> str:
    """The format of an output: `--format` if given (it must agree with a known extension), else the
    extension's; standard output without `--format` is CSV."""
    ext = "" if is_stdout(path) else Path(path).suffix.lower()
    if fmt:
        if fmt not in FORMATS:
            raise BadInput(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
        if ext in EXTENSIONS and ext not in FORMATS[fmt].extensions:
            raise BadInput(
                f"--format {fmt} contradicts the extension of {Path(path).name!r} "
                f"({EXTENSIONS[ext]}): change the file name or the format"
            )
        return _check_terminal(path, fmt)
    if is_stdout(path):
        return "csv"
    found = EXTENSIONS.get(ext)
    if not found:
        raise BadInput(
            f"cannot tell the format from {Path(path).name!r}: give --format ({', '.join(FORMATS)})"
        )
    return found


def _check_terminal(path: Path | str, fmt: str) -> str:
    if is_stdout(path) and FORMATS[fmt].binary and os.isatty(1):
        raise BadInput(
            f"refusing to write {FORMATS[fmt].label} (binary) to a terminal: redirect standard output "
            "or give a file name"
        )
    return fmt


def delimiter_for(fmt: str, delimiter: str | None) -> str:
    """The field delimiter of a CSV-like format: `--delimiter` for CSV (default ','); TSV is tab-separated."""
    spec = FORMATS[fmt]
    if delimiter is None or delimiter == spec.delimiter:
        return spec.delimiter or ","
    if fmt == "tsv":
        raise BadInput("--delimiter is for CSV: TSV is tab-separated (give a .csv name or --format csv)")
    return delimiter

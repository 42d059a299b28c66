"""Synthetic Sirene monthly stock: the six files shaped exactly like INSEE's (headers, dialect, quirks),
and on request the seventh input, INSEE's geolocation file (`geolocation=True`).

The register is generated in fixed chunks of unités légales (SIREN ranges), each from its own seeded NumPy
generator, with vectorised Arrow string columns; each chunk is streamed into the six outputs, so memory
stays bounded and the bytes only depend on the arguments. See `model` for the content and `writer` for
the CSV dialect.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mirror.core.errors import MirrorError
from mirror.core.schema import GEOLOCALISATION, LAYOUTS, STOCK_FILES
from mirror.synthetic.generate import model
from mirror.synthetic.generate.writer import (
    BackgroundWriter,
    ParquetSink,
    ZipCsvSink,
    csv_bytes,
    to_parquet_table,
)

__all__ = ["generate_stock", "run_generation", "GenerationResult", "FORMATS"]

FORMATS = ("zip", "parquet", "both")
MAX_SCALE = 60_000_000
WORKERS = max(1, min(4, os.cpu_count() or 1))  # chunk generation threads (output does not depend on it)


@dataclass
class GenerationResult:
    paths: dict[str, Path]  # table key -> zip path (or parquet path when fmt == "parquet")
    parquet_paths: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def stock_end_day(month: str) -> dt.date:
    """The register date of a stock month: the last day of the previous month."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1990:
        raise MirrorError(f"invalid month {month!r}: expected YYYY-MM (e.g. 2026-10), year 1990 or later")
    return dt.date(int(m.group(1)), int(m.group(2)), 1) - dt.timedelta(days=1)


def _check(month: str, scale: int, fmt: str, layout: str) -> dt.date:
    end = stock_end_day(month)
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= MAX_SCALE:
        raise MirrorError(
            f"invalid scale {scale!r}: expected a number of unités légales from 1 to {MAX_SCALE:,}"
        )
    if fmt not in FORMATS:
        raise MirrorError(f"invalid format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise MirrorError(f"invalid layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    return end


def run_generation(
    out_dir,
    month: str,
    scale: int = 1000,
    seed: int = 0,
    fmt: str = "zip",
    layout: str = "current",
    progress: bool = False,
    geolocation: bool = False,
) -> GenerationResult:
    """Generates the stock (see `generate_stock`) and returns paths, row counts and duration.
    `geolocation`: also write GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8 (key
    "geolocalisation"; the six stock files are the same bytes with or without it)."""
    end = _check(month, scale, fmt, layout)
    started = time.monotonic()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MirrorError(f"cannot create output directory {out}: {exc.strerror}") from exc
    ctx = model.Context(
        n_units=scale,
        seed=int(seed),
        layout=layout,
        end_day=(end - model.EPOCH).days,
        geolocation=geolocation,
    )
    files = [f for f in STOCK_FILES if f.exists_in(layout)] + ([GEOLOCALISATION] if geolocation else [])
    headers = {f.key: f.header(layout) for f in files}
    stamp = (end.year, end.month, end.day, 23, 0, 0) if end.year >= 1980 else (1980, 1, 1, 0, 0, 0)
    result = GenerationResult(paths={}, rows={f.key: 0 for f in files})
    sinks: list = []
    temps: list[tuple[Path, Path]] = []
    zips: dict[str, ZipCsvSink] = {}
    parquets: dict[str, ParquetSink] = {}
    try:
        for f in files:
            if fmt in ("zip", "both"):
                final = out / f.zip_name
                tmp = out / f".{f.zip_name}.tmp"
                zips[f.key] = ZipCsvSink(tmp, f, headers[f.key], stamp)
                sinks.append(zips[f.key])
                temps.append((tmp, final))
                result.paths[f.key] = final
            if fmt in ("parquet", "both"):
                final = out / f.parquet_name
                tmp = out / f".{f.parquet_name}.tmp"
                parquets[f.key] = ParquetSink(tmp, f.key, headers[f.key])
                sinks.append(parquets[f.key])
                temps.append((tmp, final))
                result.parquet_paths[f.key] = final
                if fmt == "parquet":
                    result.paths[f.key] = final
        n_chunks = (scale + model.CHUNK_UNITS - 1) // model.CHUNK_UNITS
        bar = _progress_bar(scale, progress)
        bg = BackgroundWriter()
        workers = max(1, min(WORKERS, n_chunks))
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                pending: deque = deque()
                submitted = 0

                def submit_more():
                    nonlocal submitted
                    while submitted < n_chunks and len(pending) < workers + 1:
                        pending.append(pool.submit(_render, ctx, submitted, files, headers, zips, parquets))
                        submitted += 1

                submit_more()
                while pending:
                    units, rendered = pending.popleft().result()
                    submit_more()
                    for key, (rows, data, table) in rendered.items():
                        result.rows[key] += rows
                        if data is not None:
                            bg.submit(zips[key].write, data)
                        if table is not None:
                            bg.submit(parquets[key].write_table, table)
                    if bar is not None:
                        bar.update(units)
        finally:
            bg.close()
            if bar is not None:
                bar.close()
        for sink in sinks:
            sink.close()
        sinks.clear()
        for tmp, final in temps:
            os.replace(tmp, final)
    except OSError as exc:
        raise MirrorError(f"cannot write the stock files in {out}: {exc}") from exc
    finally:
        for sink in sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - best effort cleanup after a failure
                pass
        for tmp, _final in temps:
            if tmp.exists():
                tmp.unlink()
    result.seconds = time.monotonic() - started
    return result


def _render(ctx, index, files, headers, zips, parquets):
    """Generates one chunk and serialises it (runs in a worker thread: Arrow and NumPy release the GIL)."""
    chunk = model.generate_chunk(ctx, index)
    out = {}
    for f in files:
        cols = getattr(chunk, f.key)
        header = headers[f.key]
        data = csv_bytes(cols, header, f.delimiter) if f.key in zips else None
        table = to_parquet_table(f.key, cols, header) if f.key in parquets else None
        out[f.key] = (len(cols[header[0]]), data, table)
    return len(chunk.unites_legales["siren"]), out


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" UL", unit_scale=True, desc="generate", leave=False)


def generate_stock(
    out_dir,
    month: str,
    scale: int = 1000,
    seed: int = 0,
    fmt: str = "zip",
    layout: str = "current",
    progress: bool = False,
    geolocation: bool = False,
) -> dict[str, Path]:
    """Writes the six monthly stock files for stock month `month` (YYYY-MM; the image of the register on
    the last day of the previous month) into out_dir; returns {table key (mirror.core.schema keys): path}.
    fmt: "zip" (INSEE zipped CSV, member names of mirror.core.schema.StockFile.csv_member), "parquet"
    (`<Name>_utf8.parquet` with the INSEE Parquet types of mirror.core.schema.insee_parquet_type) or "both"
    (then the dict values are the zip paths). scale = number of unités légales."""
    return run_generation(out_dir, month, scale, seed, fmt, layout, progress, geolocation).paths

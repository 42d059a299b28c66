"""Writes docs/BENCHMARKS.md (and docs/bench/scaling.png) from the saved benchmark results."""

from __future__ import annotations

import json
from pathlib import Path

NATIONAL = 30_000_000


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """The `## ` sections of a Markdown file's lines: (heading, its lines up to the next `## `)."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("## "):
            out.append((line, [line]))
        elif out:
            out[-1][1].append(line)
    return out


def replace_section(report: Path, heading: str, section: list[str]) -> None:
    """Replaces (or appends) the section `heading` of `report` (from its heading to the next `## `): how
    each benchmark other than `make bench` writes its part of docs/BENCHMARKS.md."""
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    else:
        start = end = len(lines)
        if lines and lines[-1].strip():
            lines.append("")
            start = end = len(lines)
    lines[start:end] = section
    report.write_text("\n".join(lines).rstrip("\n") + "\n")


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x < 0.001:
        return f"{x * 1e6:.0f} µs"
    if x < 1:
        return f"{x * 1000:.1f} ms"
    if x < 120:
        return f"{x:.2f} s"
    return f"{x / 60:.1f} min"


def _ops_rows(res: dict) -> list[tuple[str, str, str, str, str]]:
    """(operation, median, min–max, peak RSS, note) for one scale."""
    ops, rows = res["ops"], []

    def add(key, label, note=""):
        o = ops.get(key)
        if not o:
            return
        med = o.get("median", o.get("seconds"))
        rng = f"{_fmt_s(o['min'])} – {_fmt_s(o['max'])}" if "min" in o and "max" in o else ""
        rss = f"{o['max_rss_mb']:,.0f} MB" if o.get("max_rss_mb") else ""
        rows.append((label, _fmt_s(med), rng, rss, note))

    gen = ops.get("generate", {})
    add(
        "generate",
        "generate the six stock files (zip)",
        f"{gen.get('stock_zip_mb', 0):,.0f} MB of zips. {gen.get('note', '')}".strip(),
    )
    load = ops.get("load", {})
    add(
        "load",
        "load the snapshot (all six files)",
        f"snapshot {load.get('disk_mb', 0):,.0f} MB on disk. "
        + " ".join(x for x in (load.get("rss_note"), load.get("note")) if x),
    )
    add("update_day", "apply one day of changes (local work)", ops.get("update_day", {}).get("note", ""))
    lk = ops.get("lookup_api")
    if lk:
        rows.append(
            (
                "lookup, Python API (v3 document, 1,000 random SIRENs)",
                _fmt_s(lk["median"]),
                f"{_fmt_s(lk['min'])} – {_fmt_s(lk['max'])}",
                f"{lk['max_rss_mb']:,.0f} MB",
                f"p95 {_fmt_s(lk['p95'])}; by SIRET (v3 établissement): median "
                f"{_fmt_s(lk.get('siret_median'))}, p95 {_fmt_s(lk.get('siret_p95'))}",
            )
        )
    add("lookup_cli", "lookup, CLI `mirror get` (process start included)")
    sf = ops.get("standard_filter")
    if sf:
        rows.append(
            (
                "standard filter (NAF + département + tranches + active), count",
                _fmt_s(sf["median"]),
                f"{_fmt_s(sf['min'])} – {_fmt_s(sf['max'])}",
                f"{sf['max_rss_mb']:,.0f} MB",
                f"{sf['rows']:,} rows",
            )
        )
    n_export = ops.get("export_csv", {}).get("rows", 0)
    add("export_csv", f"export {n_export:,} rows to CSV")
    add("export_parquet", f"export {n_export:,} rows to Parquet")
    n_ids = res.get("prep", {}).get("n_ids", 0)
    add("batch_csv", f"batch enrichment of {n_ids:,} SIRENs to CSV")
    add("documents_jsonl", f"v3 documents for {n_ids:,} SIRENs (JSON Lines)")
    return rows


def _ratio(mirror: float, baseline: float) -> str:
    if mirror <= baseline:
        return f"mirror {baseline / mirror:,.1f}x faster"
    return f"mirror {mirror / baseline:,.1f}x slower"


def _baseline_rows(res: dict) -> list[tuple[str, str, str, str]]:
    """(question, mirror, baseline, ratio)."""
    out = []
    mq = res["ops"].get("mirror_queries", {})
    sf = res["ops"].get("standard_filter", {})
    mirror = {
        "siren_lookup": mq.get("siren_lookup"),
        "departement_filter": mq.get("departement_filter"),
        "standard_filter": sf.get("median"),
    }
    labels = {
        "siren_lookup": "one SIREN lookup",
        "departement_filter": "count of a département's établissements",
        "standard_filter": "standard filter",
    }
    for name, base in (
        ("DuckDB on the raw zipped CSV", res["baselines"].get("raw_csv", {})),
        ("SQLite row store with indexes", res["baselines"].get("sqlite", {})),
    ):
        if base.get("skipped"):
            out.append((f"{name}: {base['skipped']}", "", "", ""))
            continue
        for key, label in labels.items():
            if base.get(key) is not None and mirror.get(key):
                out.append(
                    (
                        f"{label} — {name}",
                        _fmt_s(mirror[key]),
                        _fmt_s(base[key]),
                        _ratio(mirror[key], base[key]),
                    )
                )
        if "load" in base:
            load = res["ops"].get("load", {}).get("median")
            out.append(
                (
                    f"load (mirror: all six files; {name}: UL + établissements only)",
                    _fmt_s(load),
                    _fmt_s(base["load"]),
                    _ratio(load, base["load"]) if load else "",
                )
            )
    api = res["baselines"].get("insee_api")
    if api:
        n = res.get("prep", {}).get("n_ids", 0)
        batch = res["ops"].get("batch_csv", {}).get("median")
        out.append(
            (
                f"{n:,} SIRENs — INSEE API at 30 req/min, one lookup per request (COMPUTED)",
                _fmt_s(batch),
                _fmt_s(api["lookups_1_per_request_s"]),
                "",
            )
        )
        out.append(
            (
                f"{n:,} SIRENs — INSEE API, 1,000 per request (COMPUTED, best case)",
                _fmt_s(batch),
                _fmt_s(api["paged_1000_per_request_s"]),
                "",
            )
        )
    return out


TARGETS = [
    # (label, extractor, limit, unit)
    (
        "national generation of UL + établissements (all six files measured) <= 15 min",
        lambda r: r["ops"].get("generate", {}).get("seconds"),
        15 * 60,
    ),
    ("national load <= 10 min", lambda r: r["ops"].get("load", {}).get("median"), 600),
    (
        "national load peak memory <= 8 GB (GB)",
        lambda r: (r["ops"].get("load", {}).get("max_rss_mb") or 0) / 1024 or None,
        8,
    ),
    ("one day of updates, local work <= 10 s", lambda r: r["ops"].get("update_day", {}).get("median"), 10),
    (
        "filter after 30 days of deltas <= 1.5x fresh (ratio)",
        lambda r: r["ops"].get("filter_after_deltas", {}).get("ratio"),
        1.5,
    ),
    (
        "lookup through the Python API <= 50 ms (median)",
        lambda r: r["ops"].get("lookup_api", {}).get("median"),
        0.05,
    ),
    ("1M documents as JSON Lines <= 60 s", lambda r: r["ops"].get("documents_jsonl", {}).get("median"), 60),
    ("standard filter <= 1 s", lambda r: r["ops"].get("standard_filter", {}).get("median"), 1),
    ("export of 1M rows to CSV <= 15 s", lambda r: r["ops"].get("export_csv", {}).get("median"), 15),
    ("export of 1M rows to Parquet <= 8 s", lambda r: r["ops"].get("export_parquet", {}).get("median"), 8),
    (
        "batch enrichment of 1M SIRENs to CSV <= 30 s",
        lambda r: r["ops"].get("batch_csv", {}).get("median"),
        30,
    ),
]


def _growth(small: dict, large: dict, keys: list[tuple[str, str]]) -> list[tuple]:
    import math

    rows = []
    for key, label in keys:
        a, b = small["ops"].get(key, {}), large["ops"].get(key, {})
        ta, tb = a.get("median", a.get("seconds")), b.get("median", b.get("seconds"))
        if not ta or not tb:
            continue
        k = math.log(tb / ta) / math.log(large["scale"] / small["scale"])
        kind = (
            "about constant"
            if k < 0.2
            else "sublinear"
            if k < 0.8
            else "linear"
            if k < 1.2
            else "superlinear"
        )
        rss = b.get("max_rss_mb")
        rows.append((label, f"{k:.2f}", kind, f"{rss:,.0f} MB" if rss else "not captured"))
    return rows


def _table(header: tuple, rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _chart(results: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scales = [r["scale"] for r in results]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (
        ("generate", "generate"),
        ("load", "load"),
        ("export_csv", "export CSV"),
        ("batch_csv", "batch 1M"),
        ("standard_filter", "standard filter"),
        ("lookup_api", "lookup (API)"),
    ):
        ys = [r["ops"].get(key, {}).get("median", r["ops"].get(key, {}).get("seconds")) for r in results]
        if any(y is not None for y in ys):
            ax1.plot(scales, ys, marker="o", label=label)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("unités légales")
    ax1.set_ylabel("seconds")
    ax1.legend(fontsize=8)
    ax1.set_title("time")
    for key, label in (
        ("generate", "generate"),
        ("load", "load"),
        ("batch_csv", "batch"),
        ("export_csv", "export CSV"),
    ):
        ys = [(r["ops"].get(key, {}).get("max_rss_mb") or None) for r in results]
        if any(y is not None for y in ys):
            ax2.plot(scales, ys, marker="o", label=label)
    ax2.set_xscale("log")
    ax2.set_xlabel("unités légales")
    ax2.set_ylabel("peak RSS (MB)")
    ax2.legend(fontsize=8)
    ax2.set_title("peak memory")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_report(results_dir: Path, report: Path) -> Path:
    results = sorted(
        (json.loads(p.read_text()) for p in results_dir.glob("results-*.json")), key=lambda r: r["scale"]
    )
    parts = [
        "# Benchmarks",
        "",
        "Produced by `make bench SCALE=N` (`python -m benchmarks.bench --scale N`); this file is rebuilt from "
        "`docs/bench/results-*.json`, one file per scale. All data is SYNTHETIC (`mirror generate`), shaped "
        "like INSEE's stock files. Each operation runs in its own process; times are medians of the runs "
        "(min – max shown), peak memory is that process's maximum RSS.",
        "",
    ]
    if not results:
        parts.append("No results yet.")
    else:
        top = results[-1]
        m = top["machine"]
        parts += [
            f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, disk {m['disk_total_gb']} GB "
            f"({m['disk_free_gb']} GB free), Python {m['python']}.",
            "",
        ]
        parts += [
            "## Targets",
            "",
            f"Measured at the largest scale run ({top['scale']:,} unités légales, {top['machine']['date']}, "
            f"commit {top['machine']['commit']}). Targets are stated for the national scale (30 M).",
            "",
        ]
        rows = []
        for label, get, limit in TARGETS:
            value = get(top)
            if value is None:
                rows.append((label, "not measured", ""))
                continue
            verdict = "met" if value <= limit else "NOT met"
            if top["scale"] < NATIONAL:
                verdict += " (below national scale)"
            shown = f"{value:.2f}" if label.endswith(("(GB)", "(ratio)")) else _fmt_s(value)
            rows.append((label, shown, verdict))
        parts += [_table(("target", "measured", "verdict"), rows), ""]
        for res in reversed(results):
            m = res["machine"]
            parts += [
                f"## Scale {res['scale']:,} unités légales",
                "",
                f"Date {m['date']}, commit {m['commit']}. Reproduce: `make bench SCALE={res['scale']}`.",
                "",
            ]
            parts += [_table(("operation", "median", "min – max", "peak RSS", "note"), _ops_rows(res)), ""]
            base = _baseline_rows(res)
            if base:
                parts += [
                    "Baselines, measured in the same run (INSEE API lines are computations, not measurements):",
                    "",
                    _table(("question", "mirror", "baseline", "ratio"), base),
                    "",
                ]
        if len(results) > 1:
            parts += ["## Scaling", ""]
            keys = [
                ("generate", "generate"),
                ("load", "load"),
                ("standard_filter", "standard filter"),
                ("lookup_api", "lookup"),
                ("export_csv", "export CSV"),
                ("batch_csv", "batch 1M"),
            ]
            rows = []
            for res in results:
                row = [f"{res['scale']:,}"]
                for key, _ in keys:
                    o = res["ops"].get(key, {})
                    row.append(_fmt_s(o.get("median", o.get("seconds"))))
                rows.append(tuple(row))
            parts += [_table(("scale", *[k[1] for k in keys]), rows), ""]
            parts += [
                "How each operation grows between the smallest and the largest scale (exponent of a power "
                "law fitted on the two end points: 0 is constant, 1 linear):",
                "",
            ]
            parts += [
                _table(
                    ("operation", "exponent", "growth", "peak RSS at the largest scale"),
                    _growth(results[0], results[-1], keys),
                ),
                "",
            ]
            if _chart(results, results_dir / "scaling.png"):
                parts += ["![scaling](bench/scaling.png)", ""]
    for serving in sorted(
        (json.loads(p.read_text()) for p in results_dir.glob("serving-*.json")), key=lambda r: -r["scale"]
    ):
        parts += _serving_section(serving)
    # The sections the other benchmarks wrote (replace_section) stay, after these, in their order.
    own = {line for line in parts if line.startswith("## ")}
    if report.exists():
        for heading, lines in _sections(report.read_text().splitlines()):
            if heading not in own:
                parts += [*lines] if lines[-1].strip() == "" else [*lines, ""]
    report.write_text("\n".join(parts).rstrip("\n") + "\n")
    return report


_SYSTEMS = {
    "mirror": "mirror",
    "sqlite": "SQLite row store (indexes)",
    "sqlite_fts5": "SQLite FTS5 (bm25 top 20)",
    "duckdb_parquet": "DuckDB on the official Parquet",
    "polars_parquet": "polars on the official Parquet",
}


def _serving_section(res: dict) -> list[str]:
    """Issue 13's side-by-side table: each operation, each system's median, the ratio to the mirror."""
    m = res["machine"]
    rows = []

    def add(label: str, per_system: dict[str, float | None]) -> None:
        mine = per_system.get("mirror")
        for name, value in per_system.items():
            if name == "mirror" or value is None:
                continue
            rows.append((label, _fmt_s(mine), _SYSTEMS[name], _fmt_s(value), _ratio(mine, value)))

    look = res["lookups"]
    for kind, label in (("siren", "v3 document by SIREN (unit + siège)"), ("siret", "v3 document by SIRET")):
        add(label, {n: look[n][kind]["median"] for n in look})
        rows.append(
            (
                f"{label}: mirror p95 / p99",
                _fmt_s(look["mirror"][kind]["p95"]),
                "",
                _fmt_s(look["mirror"][kind]["p99"]),
                "",
            )
        )
    search = res["searches"]
    for text in search["mirror"]:
        add(
            f'search top 20 "{text}" ({search["hits"][text]:,} matches; p95 {_fmt_s(search["mirror"][text]["p95"])})',
            {n: search[n][text]["median"] for n in ("mirror", "sqlite_fts5")},
        )
    filt = res["filters"]
    for kind, label in (
        ("standard_filter", "standard filter count"),
        ("departement_count", "count of a département"),
    ):
        add(label, {n: filt[n][kind]["median"] for n in ("mirror", "sqlite", "duckdb_parquet")})
    bulk = res["bulk"]
    ids = f"{min(1_000_000, max(res['scale'], 1000)):,}"
    for op, label in (
        ("export_csv", "export of every établissement to CSV"),
        ("export_parquet", "export of every établissement to Parquet"),
        ("batch", f"batch of {ids} SIRENs to CSV"),
        ("batch_sirets", f"batch of {ids} SIRETs to CSV, level établissement"),
    ):
        if all(op in bulk[n] for n in bulk):  # older runs lack the SIRETs' batch
            add(label + " (process)", {n: bulk[n][op]["median"] for n in bulk})
    disk = res["prep"]["disk_mb"]
    return [
        f"## Serving paths against the strongest alternatives, {res['scale']:,} unités légales",
        "",
        f"Date {res['date']}, commit {res['commit']}, {m['cores']} cores. Reproduce: `python -m benchmarks.serving "
        f"--scale {res['scale']}`. Every operation interleaved round by round with its baselines in one run; "
        "medians of the rounds. Lookups and searches in-process; exports and batch as processes.",
        "",
        _table(("operation", "mirror", "baseline", "baseline time", "ratio"), rows),
        "",
        f"Disk: snapshot {disk['snapshot']:,.0f} MB, lookup store + search index {disk['lookup_store']:,.0f} MB; "
        f"official Parquet {disk['official_parquet']:,.0f} MB; SQLite row store with indexes and FTS5 "
        f"{disk['sqlite_row_store_fts']:,.0f} MB. Load {res['prep']['load']['seconds']:.1f} s (snapshot, catalog "
        f"and lookup store: {res['prep']['load']['stdout'].strip().splitlines()[-1] if res['prep']['load']['stdout'].strip() else ''}); "
        f"SQLite build {res['prep']['sqlite_build_seconds']:.1f} s."
        + (f" {res['prep']['note']}" if res["prep"].get("note") else ""),
        "",
    ]

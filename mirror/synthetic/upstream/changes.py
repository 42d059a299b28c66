"""A deterministic stream of daily Sirene changes on top of a generated monthly stock (SYNTHETIC data).

`DailyChanges(stock_dir, month)` reads the stock of `month` (the six `<Name>_utf8.zip` files written by
`mirror.synthetic.generate.generate_stock`, or plain `<Name>_utf8.csv`) into an in-memory DuckDB database (all
VARCHAR, NULL = empty), then generates, day after day, the changes INSEE would process: creations,
closures, reopenings of natural persons, siège transfers (with a lien de succession), NAF changes, name
changes, switches to partial diffusion (`[ND]` masks), new établissements and closures of secondary
établissements. Each day applies on top of the previous days of the month; the versions produced are kept
in overlay tables (`ov_*`, one version per key and day), which also serve as the cache of computed days.

Rows are stock rows (dicts of current-layout column -> string, "" for null) with timestamps as the API
writes them (`2026-10-05T03:12:33.123`, between 00:05 and 06:00, the nightly batch).
`write_next_month_stock(out_dir)` writes stock M+1 = stock M + every change of month M.
"""

from __future__ import annotations

import calendar
import random
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from mirror.core.config import open_duckdb
from mirror.core.errors import MirrorError
from mirror.core.identifiers import LA_POSTE_SIREN, is_valid_siren, luhn_check_digit
from mirror.core.schema import (
    DELTA_TABLES,
    KEY_COLUMNS,
    MASKABLE_COLUMNS,
    MASKED_ETABLISSEMENT_COLUMNS,
    MASKED_ETABLISSEMENT_PERSON_COLUMNS,
    MASKED_UL_COMPANY_COLUMNS,
    MASKED_UL_PERSON_COLUMNS,
    ND,
    STOCK_FILES,
    STOCK_FILES_BY_KEY,
)
from mirror.core.sql import ident, idents, literal, render

# ~20,000 unités légales changed per day for ~30 M units (reference: ~10-30 k updates a day).
DEFAULT_RATE = 20_000 / 30_000_000
# Établissement-only events per UL event (with those of UL events: ~50,000 établissements a day).
ETAB_EVENTS_PER_UL_EVENT = 1.5
MIN_UL_EVENTS = 8
MAX_ETABS_PER_CHANGED_UNIT = 100
DAY_CACHE_SIZE = 8  # DayChanges kept in memory (the overlay tables keep every day)
MIN_ETAB_EVENTS = 4
# Share of each UL event kind.
UL_EVENT_MIX = (
    ("creation", 0.25),
    ("closure", 0.12),
    ("reopening", 0.05),
    ("siege_transfer", 0.06),
    ("naf_change", 0.20),
    ("name_change", 0.20),
    ("diffusion_p", 0.12),
)
ETAB_EVENT_MIX = (("new_etablissement", 0.6), ("etablissement_closure", 0.4))

_FIRST_NAMES = ("MARIE", "JEAN", "NATHALIE", "PIERRE", "SOPHIE", "LUC", "CAMILLE", "HUGO", "LEA", "KARIM")
_LAST_NAMES = (
    "MARTIN",
    "BERNARD",
    "DUBOIS",
    "THOMAS",
    "ROBERT",
    "PETIT",
    "DURAND",
    "LEROY",
    "MOREAU",
    "NGUYEN",
)
_WORDS = ("ATELIER", "HORIZON", "SOLUTIONS", "AZUR", "BOIS", "CONSEIL", "NOVA", "ALPHA", "TERRE", "OCEAN")
_COMPANY_CJ = ("5499", "5710", "5710", "6540", "9220", "5720", "5499", "5710")
_FALLBACK_NAF = (("62.01Z", "62.10Y"), ("47.11D", ""), ("56.10A", ""), ("68.20B", ""), ("43.21A", ""))


@dataclass
class DayChanges:
    """The new versions of everything changed on `day` (stock rows, current layout, strings)."""

    day: date
    unites_legales: list[dict] = field(default_factory=list)
    unites_legales_historique: list[dict] = field(default_factory=list)  # every period of each changed unit
    etablissements: list[dict] = field(default_factory=list)
    etablissements_historique: list[dict] = field(default_factory=list)
    liens_succession: list[dict] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)  # (kind, siren or siret), in order

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, _ in self.events:
            out[kind] = out.get(kind, 0) + 1
        return out


@dataclass
class _Unit:
    row: dict
    history: list[dict]
    etabs: dict[str, tuple[dict, list[dict]]]  # siret -> (row, history)


def month_days(month: str) -> list[date]:
    year, mon = (int(x) for x in month.split("-"))
    return [date(year, mon, d) for d in range(1, calendar.monthrange(year, mon)[1] + 1)]


def _blank(value) -> str:
    return "" if value is None else value


class DailyChanges:
    """Deterministic daily changes of `month` on top of the stock in `stock_dir` (see module doc)."""

    def __init__(
        self,
        stock_dir: Path,
        month: str,
        seed: int = 0,
        rate: float = DEFAULT_RATE,
        db_path: Path | None = None,
        quiet_days: Iterable[date] = (),
    ):
        """`rate`: share of the unités légales changed per day; `quiet_days`: days without any change (INSEE
        had some, e.g. 6-7 Dec 2025: every search answers 404); `db_path`: a DuckDB file holding the stock and
        the overlay, for large stocks (re-created, never reused)."""
        try:
            self.days = month_days(month)
        except (ValueError, AttributeError):
            raise MirrorError(f"bad month {month!r}: expected YYYY-MM") from None
        self.stock_dir = Path(stock_dir)
        self.month = month
        self.seed = seed
        self.rate = rate
        self.quiet_days = frozenset(quiet_days)
        self.lock = threading.RLock()
        if db_path is not None:
            Path(db_path).unlink(missing_ok=True)
            Path(str(db_path) + ".wal").unlink(missing_ok=True)
        self.con = open_duckdb(str(db_path) if db_path is not None else ":memory:")
        self.columns = {key: list(STOCK_FILES_BY_KEY[key].columns) for key in STOCK_FILES_BY_KEY}
        self._load_stock()
        self._generated: list[date] = []
        self._cache: dict[date, DayChanges] = {}
        self._events: dict[date, list[tuple[str, str]]] = {}
        self.n_units = self.con.execute("SELECT count(*) FROM unites_legales").fetchone()[0]
        # Units with many établissements are left alone (loading them for each change would be slow).
        self.con.execute(render("synthetic/big_units.sql", max_etabs=int(MAX_ETABS_PER_CHANGED_UNIT)))
        self._naf_pairs = [
            (a, _blank(b)) for a, b in self.con.execute(render("synthetic/naf_pairs.sql")).fetchall()
        ] or list(_FALLBACK_NAF)

    # ------------------------------------------------------------------ stock loading

    def _load_stock(self) -> None:
        with tempfile.TemporaryDirectory(prefix="mirror-changes-") as tmp:
            for sf in STOCK_FILES:
                csv_path = self._stock_csv(sf, Path(tmp))
                cols = self.columns[sf.key]
                if csv_path is None:
                    if sf.required:
                        raise MirrorError(f"no {sf.zip_name} (or {sf.csv_member}) in {self.stock_dir}")
                    select = ", ".join(f'NULL::VARCHAR AS "{c}"' for c in cols)
                    self.con.execute(f"CREATE TABLE {sf.key} AS SELECT {select} LIMIT 0")
                else:
                    src = (
                        f"read_csv({literal(csv_path)}, all_varchar=true, header=true, quote='\"', "
                        "escape='\"', delim=',', strict_mode=false)"
                    )
                    have = {r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
                    select = ", ".join(f'"{c}"' if c in have else f'NULL::VARCHAR AS "{c}"' for c in cols)
                    self.con.execute(f"CREATE TABLE {sf.key} AS SELECT {select} FROM {src}")
                    if csv_path.parent == Path(tmp):
                        csv_path.unlink()
                if sf.key in DELTA_TABLES:
                    self.con.execute(
                        f"CREATE TABLE ov_{sf.key} AS SELECT *, NULL::DATE AS day, NULL::INTEGER AS seq "
                        f"FROM {sf.key} LIMIT 0"
                    )

    def _stock_csv(self, sf, tmp: Path) -> Path | None:
        plain = self.stock_dir / sf.csv_member
        if plain.exists():
            return plain
        zpath = self.stock_dir / sf.zip_name
        if not zpath.exists():
            return None
        out = tmp / sf.csv_member
        with zipfile.ZipFile(zpath) as zf, zf.open(sf.csv_member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return out

    # ------------------------------------------------------------------ public API

    def changes_for(self, day: date) -> DayChanges:
        """The changes processed on `day` (a day of `month`), generating the previous days first."""
        if day not in self.days:
            raise MirrorError(f"{day} is not a day of {self.month}")
        with self.lock:
            self.ensure(day)
            if day not in self._cache:
                if len(self._cache) >= DAY_CACHE_SIZE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[day] = self._read_day(day)
            return self._cache[day]

    def ensure(self, day: date) -> None:
        """Generates every day of the month up to `day` (included)."""
        with self.lock:
            for d in self.days:
                if d > day:
                    break
                if d not in self._generated:
                    self._generate_day(d)
                    self._generated.append(d)

    def current_rows(
        self,
        table: str,
        as_of: date | None,
        where: str = "TRUE",
        params: list | None = None,
        order: str | None = None,
        keys: list[str] | None = None,
        key_col: str | None = None,
    ) -> list[dict]:
        """Rows of `table` as the API holds them after day `as_of` (stock + latest overlay versions).

        `where` is a SQL predicate on the table's columns (with `?` parameters); `keys` restricts to rows whose
        `key_col` is in the list. For the history tables, all periods of the latest version of each unit.
        Days after `as_of` are ignored (None: the stock only).
        """
        with self.lock:
            if as_of is not None:
                self.ensure(min(as_of, self.days[-1]))
            return self._rows(table, as_of, where, params, order, keys, key_col)

    def _rows(
        self, table, as_of, where="TRUE", params=None, order=None, keys=None, key_col=None
    ) -> list[dict]:
        sql = self._current_sql(table, as_of)
        order = order or ", ".join(f'"{k}"' for k in KEY_COLUMNS[table])
        if keys is not None:
            self.con.register("_sel_keys", pa.table({"k": pa.array(list(keys), pa.string())}))
            where = f'({where}) AND "{key_col}" IN (SELECT k FROM _sel_keys)'
        try:
            return _dicts(
                self.con.execute(f"SELECT * FROM ({sql}) WHERE {where} ORDER BY {order}", params or [])
            )
        finally:
            if keys is not None:
                self.con.unregister("_sel_keys")

    def write_next_month_stock(self, out_dir: Path, through: date | None = None) -> dict[str, Path]:
        """Writes the six files of stock month+1 (zip CSV, current layout) = stock + every change of month.

        `through` (a day of the month) writes instead the stock as of the end of that day, like INSEE's
        exceptional mid-month stock of 2025-12-16. Returns {table key: zip path}.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        last = through or self.days[-1]
        if last not in self.days:
            raise MirrorError(f"{last} is not a day of {self.month}")
        with self.lock:
            self.ensure(last)
            paths = {}
            for sf in STOCK_FILES:
                order = {
                    "unites_legales": "siren",
                    "unites_legales_historique": "siren, dateFin DESC NULLS FIRST, dateDebut DESC NULLS LAST",
                    "etablissements": "siren, nic",
                    "etablissements_historique": "siren, nic, dateFin DESC NULLS FIRST, dateDebut DESC NULLS LAST",
                    "liens_succession": "siretEtablissementPredecesseur, siretEtablissementSuccesseur, "
                    "dateLienSuccession",
                    "doublons": "siren, sirenDoublon",
                }[sf.key]
                sql = self._current_sql(sf.key, last) if sf.key in DELTA_TABLES else f"SELECT * FROM {sf.key}"
                cols = ", ".join(f'"{c}"' for c in sf.columns)
                csv_tmp = out_dir / f".{sf.csv_member}.tmp"
                self.con.execute(
                    f"COPY (SELECT {cols} FROM ({sql}) ORDER BY {order}) TO {literal(csv_tmp)} "
                    "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"')"
                )
                zpath = out_dir / sf.zip_name
                ztmp = out_dir / f".{sf.zip_name}.tmp"
                with zipfile.ZipFile(ztmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                    zf.write(csv_tmp, sf.csv_member)
                csv_tmp.unlink()
                ztmp.replace(zpath)
                paths[sf.key] = zpath
            return paths

    def close(self) -> None:
        with self.lock:
            self.con.close()

    # ------------------------------------------------------------------ overlay queries

    def _current_sql(self, table: str, as_of: date | None) -> str:
        """SQL of the current state of `table` after day `as_of` (overlay versions of days <= as_of win)."""
        day = "DATE " + literal((as_of or date(1, 1, 1)).isoformat())
        if table == "liens_succession":
            return render("synthetic/current_liens.sql", day=day)
        return render(
            "synthetic/current_state.sql",
            table=ident(table),
            overlay=ident(f"ov_{table}"),
            key=ident(KEY_COLUMNS[table][0]),
            day=day,
        )

    def _read_day(self, day: date) -> DayChanges:
        out = DayChanges(day, events=list(self._events.get(day, [])))
        for table in DELTA_TABLES:
            order = "seq"
            if table.endswith("_historique"):
                order = "seq, dateFin DESC NULLS FIRST, dateDebut DESC NULLS LAST"
            rel = self.con.execute(
                f"SELECT * EXCLUDE (day, seq) FROM ov_{table} WHERE day = ? ORDER BY {order}", [day]
            )
            setattr(out, table, _dicts(rel))
        return out

    def _load_units(self, sirens: list[str]) -> dict[str, _Unit]:
        """The current state (after the generated days) of these units, with their établissements."""
        if not sirens:
            return {}
        last = self._generated[-1] if self._generated else None
        units = {}
        rows = self._rows("unites_legales", last, keys=sirens, key_col="siren")
        for r in rows:
            units[r["siren"]] = _Unit(r, [], {})
        for h in self._rows("unites_legales_historique", last, keys=sirens, key_col="siren"):
            if h["siren"] in units:
                units[h["siren"]].history.append(h)
        ets = self._rows("etablissements", last, keys=sirens, key_col="siren")
        for e in ets:
            if e["siren"] in units:
                units[e["siren"]].etabs[e["siret"]] = (e, [])
        siret_list = [e["siret"] for e in ets]
        if siret_list:
            for h in self._rows("etablissements_historique", last, keys=siret_list, key_col="siret"):
                u = units.get(h["siren"])
                if u and h["siret"] in u.etabs:
                    u.etabs[h["siret"]][1].append(h)
        for u in units.values():
            u.history.sort(key=_period_key, reverse=True)
            if not u.history:  # no history file: the current period rebuilt from the stock row
                u.history = [_row_period(u.row, self.columns["unites_legales_historique"])]
            for siret, (row, hist) in u.etabs.items():
                hist.sort(key=_period_key, reverse=True)
                if not hist:
                    u.etabs[siret] = (row, [_row_period(row, self.columns["etablissements_historique"])])
        return units

    def _candidates(self, table: str, where: str, salt: str, limit: int) -> list[str]:
        """Deterministic pseudo-random keys of stock rows matching `where`."""
        key = KEY_COLUMNS[table][0]
        rows = self.con.execute(
            render("synthetic/candidates.sql", key=ident(key), table=ident(table), where=where), [salt, limit]
        ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ generation

    def _generate_day(self, day: date) -> None:
        if day in self.quiet_days:
            self._events[day] = []
            return
        rng = random.Random(f"{self.seed}:{day.isoformat()}")
        salt = f"{self.seed}:{day.isoformat()}:"
        n_ul = max(MIN_UL_EVENTS, round(self.rate * self.n_units))
        n_et = max(MIN_ETAB_EVENTS, round(self.rate * self.n_units * ETAB_EVENTS_PER_UL_EVENT))
        not_la_poste = f" AND siren <> '{LA_POSTE_SIREN}'"
        plan = []  # (kind, count, candidate keys)
        for kind, share in UL_EVENT_MIX + ETAB_EVENT_MIX:
            count = max(1, round((n_ul if (kind, share) in UL_EVENT_MIX else n_et) * share))
            if kind == "creation":
                plan.append((kind, count, []))
                continue
            table = "etablissements" if kind == "etablissement_closure" else "unites_legales"
            where = _CANDIDATES[kind] + not_la_poste
            plan.append((kind, count, self._candidates(table, where, salt + kind, count * 2 + 5)))
        gen = _DayGen(self, day, rng)
        gen.units = self._load_units(sorted({k[:9] for _, _, keys in plan for k in keys}))
        for kind, count, keys in plan:
            if kind == "creation":
                for _ in range(count):
                    gen.creation()
            elif kind == "etablissement_closure":
                gen.run_etab_closures(keys, count)
            else:
                gen.run_unit_events(kind, keys, count)
        gen.flush()
        self._events[day] = gen.events


# Stock predicates selecting the candidates of each event kind (re-checked on the current state).
_CANDIDATES = {
    "closure": "etatAdministratifUniteLegale = 'A'",
    "reopening": "etatAdministratifUniteLegale = 'C' AND categorieJuridiqueUniteLegale = '1000' "
    "AND unitePurgeeUniteLegale IS NULL",
    "siege_transfer": "etatAdministratifUniteLegale = 'A'",
    "naf_change": "etatAdministratifUniteLegale = 'A' AND nomenclatureActivitePrincipaleUniteLegale = 'NAFRev2'",
    "name_change": "etatAdministratifUniteLegale = 'A' AND statutDiffusionUniteLegale = 'O'",
    "diffusion_p": "statutDiffusionUniteLegale = 'O' AND etatAdministratifUniteLegale = 'A'",
    "new_etablissement": "etatAdministratifUniteLegale = 'A'",
    "etablissement_closure": "etatAdministratifEtablissement = 'A' AND etablissementSiege = 'false'",
}


class _DayGen:
    """Builds the changes of one day; every touched unit is changed at most once that day."""

    def __init__(self, dc: DailyChanges, day: date, rng: random.Random):
        self.dc = dc
        self.day = day
        self.iso = day.isoformat()
        self.eve = (day - timedelta(days=1)).isoformat()
        self.rng = rng
        self.touched: set[str] = set()
        self.seq = 0
        self.out = {t: [] for t in DELTA_TABLES}
        self.events: list[tuple[str, str]] = []
        self._addr_pool: list[dict] | None = None
        self.units: dict[str, _Unit] = {}  # current state of every candidate unit of the day

    # ---------------------------------------------------------------- helpers

    def ts(self) -> str:
        secs = self.rng.randrange(5 * 60, 6 * 3600)
        ms = self.rng.randrange(1000)
        t = datetime(self.day.year, self.day.month, self.day.day) + timedelta(seconds=secs)
        return f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms:03d}"

    def emit_unit(self, row: dict, history: list[dict]) -> None:
        self.seq += 1
        self.out["unites_legales"].append((self.seq, row))
        for h in history:
            self.out["unites_legales_historique"].append((self.seq, h))

    def emit_etab(self, row: dict, history: list[dict]) -> None:
        self.seq += 1
        self.out["etablissements"].append((self.seq, row))
        for h in history:
            self.out["etablissements_historique"].append((self.seq, h))

    def emit_lien(self, row: dict) -> None:
        self.seq += 1
        self.out["liens_succession"].append((self.seq, row))

    def flush(self) -> None:
        con = self.dc.con
        for table, items in self.out.items():
            if not items:
                continue
            cols = self.dc.columns[table]
            data = {c: pa.array([r.get(c) or None for _, r in items], pa.string()) for c in cols}
            data["day"] = pa.array([self.day] * len(items), pa.date32())
            data["seq"] = pa.array([seq for seq, _ in items], pa.int32())
            batch = pa.table(data)  # noqa: F841 - read by DuckDB below
            con.execute(f"INSERT INTO ov_{table} SELECT * FROM batch")

    def new_ul_period(self, unit: _Unit, changes: dict, flags: tuple[str, ...]) -> bool:
        """Closes the current UL period the day before and opens a new one with `changes`."""
        cur = unit.history[0] if unit.history else None
        if cur is None or (cur.get("dateDebut") or "") >= self.iso:
            return False
        new = {k: v for k, v in cur.items()}
        for k in new:
            if k.startswith("changement"):
                new[k] = "false"
        new.update(changes)
        new["dateFin"] = ""
        new["dateDebut"] = self.iso
        for f in flags:
            new[f] = "true"
        old = dict(cur, dateFin=self.eve)
        unit.history = [new, old] + unit.history[1:]
        for k, v in changes.items():
            if k in unit.row:
                unit.row[k] = v
        unit.row["dateDebut"] = self.iso
        unit.row["nombrePeriodesUniteLegale"] = str(len(unit.history))
        return True

    def new_et_period(self, row: dict, history: list[dict], changes: dict, flags: tuple[str, ...]):
        cur = history[0] if history else None
        if cur is None or (cur.get("dateDebut") or "") >= self.iso:
            return None
        new = {k: ("false" if k.startswith("changement") else v) for k, v in cur.items()}
        new.update(changes)
        new["dateFin"] = ""
        new["dateDebut"] = self.iso
        for f in flags:
            new[f] = "true"
        history = [new, dict(cur, dateFin=self.eve)] + history[1:]
        row = dict(row)
        for k, v in changes.items():
            if k in row:
                row[k] = v
        row["dateDebut"] = self.iso
        row["nombrePeriodesEtablissement"] = str(len(history))
        return row, history

    def new_nic(self, unit: _Unit) -> str:
        existing = {e[0]["nic"] for e in unit.etabs.values()}
        top = max((int(n[:4]) for n in existing if n[:4].isdigit()), default=0)
        prefix = top + 1
        while True:
            p4 = f"{prefix % 10000:04d}"
            nic = p4 + luhn_check_digit(unit.row["siren"] + p4)
            if nic not in existing:
                return nic
            prefix += 1

    def address(self) -> dict:
        """The address of a random active diffusible établissement of the stock (a real commune)."""
        if self._addr_pool is None:
            cols = [
                c
                for c in self.dc.columns["etablissements"]
                if c.endswith("Etablissement")
                and "2Etablissement" not in c
                and (c in MASKED_ETABLISSEMENT_COLUMNS or "Commune" in c or "Pays" in c)
            ]
            rel = self.dc.con.execute(render("synthetic/address_pool.sql", columns=idents(cols)), [self.iso])
            self._addr_pool = _dicts(rel) or [
                {
                    "codeCommuneEtablissement": "75056",
                    "libelleCommuneEtablissement": "PARIS",
                    "codePostalEtablissement": "75001",
                }
            ]
        return dict(self.rng.choice(self._addr_pool))

    def new_etab_row(self, unit: _Unit, nic: str, ts: str, siege: bool) -> tuple[dict, list[dict]]:
        siren = unit.row["siren"]
        cur = unit.history[0] if unit.history else {}
        row = {c: "" for c in self.dc.columns["etablissements"]}
        row.update(self.address())
        row.update(
            siren=siren,
            nic=nic,
            siret=siren + nic,
            statutDiffusionEtablissement="O",
            dateCreationEtablissement=self.iso,
            dateDernierTraitementEtablissement=ts,
            etablissementSiege="true" if siege else "false",
            nombrePeriodesEtablissement="1",
            dateDebut=self.iso,
            etatAdministratifEtablissement="A",
            activitePrincipaleEtablissement=cur.get("activitePrincipaleUniteLegale", ""),
            nomenclatureActivitePrincipaleEtablissement=cur.get(
                "nomenclatureActivitePrincipaleUniteLegale", ""
            ),
            caractereEmployeurEtablissement="N",
            activitePrincipaleNAF25Etablissement=unit.row.get("activitePrincipaleNAF25UniteLegale", ""),
        )
        hist = {c: "" for c in self.dc.columns["etablissements_historique"]}
        for c in hist:
            if c in row and c != "dateFin":
                hist[c] = row[c]
        for c in hist:
            if c.startswith("changement"):
                hist[c] = "false"
        hist["dateFin"] = ""
        return row, [hist]

    # ---------------------------------------------------------------- events

    def run_unit_events(self, kind: str, sirens: list[str], count: int) -> None:
        units = self.units
        done = 0
        for siren in sirens:
            if done >= count:
                break
            unit = units.get(siren)
            if unit is None or siren in self.touched:
                continue
            if getattr(self, kind)(unit):
                self.touched.add(siren)
                self.events.append((kind, siren))
                done += 1

    def run_etab_closures(self, sirets: list[str], count: int) -> None:
        units = self.units
        done = 0
        for siret in sirets:
            if done >= count:
                break
            unit = units.get(siret[:9])
            if unit is None or unit.row["siren"] in self.touched or siret not in unit.etabs:
                continue
            row, hist = unit.etabs[siret]
            if row["etatAdministratifEtablissement"] != "A" or row["etablissementSiege"] == "true":
                continue
            res = self.new_et_period(
                row,
                hist,
                {"etatAdministratifEtablissement": "F"},
                ("changementEtatAdministratifEtablissement",),
            )
            if res is None:
                continue
            res[0]["dateDernierTraitementEtablissement"] = self.ts()
            self.emit_etab(*res)
            self.touched.add(unit.row["siren"])
            self.events.append(("etablissement_closure", siret))
            done += 1

    def creation(self) -> bool:
        for _ in range(50):
            siren8 = f"{self.rng.randrange(10_000_000, 99_999_999):08d}"
            siren = siren8 + luhn_check_digit(siren8)
            if siren in self.touched or siren.startswith("356000") or not is_valid_siren(siren):
                continue
            exists = self.dc.con.execute(render("synthetic/siren_taken.sql"), [siren, siren]).fetchone()[0]
            if not exists:
                break
        else:
            return False
        ts = self.ts()
        person = self.rng.random() < 0.56
        naf, naf25 = self.rng.choice(self.dc._naf_pairs)
        row = {c: "" for c in self.dc.columns["unites_legales"]}
        row.update(
            siren=siren,
            statutDiffusionUniteLegale="O",
            dateCreationUniteLegale=self.iso,
            dateDernierTraitementUniteLegale=ts,
            nombrePeriodesUniteLegale="1",
            dateDebut=self.iso,
            etatAdministratifUniteLegale="A",
            activitePrincipaleUniteLegale=naf,
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
            economieSocialeSolidaireUniteLegale="N",
            societeMissionUniteLegale="N",
            activitePrincipaleNAF25UniteLegale=naf25,
        )
        if person:
            first = self.rng.choice(_FIRST_NAMES)
            row.update(
                sexeUniteLegale=self.rng.choice("MF"),
                prenom1UniteLegale=first,
                prenomUsuelUniteLegale=first,
                nomUniteLegale=self.rng.choice(_LAST_NAMES),
                categorieJuridiqueUniteLegale="1000",
            )
        else:
            row.update(
                denominationUniteLegale=f"{self.rng.choice(_WORDS)} {self.rng.choice(_WORDS)}",
                categorieJuridiqueUniteLegale=self.rng.choice(_COMPANY_CJ),
                categorieEntreprise="PME",
                anneeCategorieEntreprise=str(self.day.year - 2),
            )
        hist = {c: "" for c in self.dc.columns["unites_legales_historique"]}
        for c in hist:
            hist[c] = "false" if c.startswith("changement") else row.get(c, "")
        hist["dateFin"] = ""
        unit = _Unit(row, [hist], {})
        nic = self.new_nic(unit)
        row["nicSiegeUniteLegale"] = hist["nicSiegeUniteLegale"] = nic
        etab = self.new_etab_row(unit, nic, ts, siege=True)
        self.emit_unit(row, [hist])
        self.emit_etab(*etab)
        self.touched.add(siren)
        self.events.append(("creation", siren))
        return True

    def closure(self, unit: _Unit) -> bool:
        active = [(s, e) for s, e in unit.etabs.items() if e[0]["etatAdministratifEtablissement"] == "A"]
        if unit.row["etatAdministratifUniteLegale"] != "A" or len(active) > 200:
            return False
        if not self.new_ul_period(
            unit, {"etatAdministratifUniteLegale": "C"}, ("changementEtatAdministratifUniteLegale",)
        ):
            return False
        ts = self.ts()
        unit.row["dateDernierTraitementUniteLegale"] = ts
        closed = []
        for _, (row, hist) in sorted(active):
            res = self.new_et_period(
                row,
                hist,
                {"etatAdministratifEtablissement": "F"},
                ("changementEtatAdministratifEtablissement",),
            )
            if res is None:  # period starting today or later (junk date): close it in place
                row = dict(row, etatAdministratifEtablissement="F")
                hist = [dict(hist[0], etatAdministratifEtablissement="F")] + hist[1:] if hist else hist
                res = (row, hist)
            res[0]["dateDernierTraitementEtablissement"] = ts
            closed.append(res)
        self.emit_unit(unit.row, unit.history)
        for res in closed:
            self.emit_etab(*res)
        return True

    def reopening(self, unit: _Unit) -> bool:
        if (
            unit.row["etatAdministratifUniteLegale"] != "C"
            or unit.row["categorieJuridiqueUniteLegale"] != "1000"
        ):
            return False
        siege_siret = unit.row["siren"] + unit.row["nicSiegeUniteLegale"]
        if siege_siret not in unit.etabs:
            return False
        srow, shist = unit.etabs[siege_siret]
        res = None
        if srow["etatAdministratifEtablissement"] == "F":
            res = self.new_et_period(
                srow,
                shist,
                {"etatAdministratifEtablissement": "A"},
                ("changementEtatAdministratifEtablissement",),
            )
            if res is None:
                return False
        if not self.new_ul_period(
            unit, {"etatAdministratifUniteLegale": "A"}, ("changementEtatAdministratifUniteLegale",)
        ):
            return False
        ts = self.ts()
        unit.row["dateDernierTraitementUniteLegale"] = ts
        self.emit_unit(unit.row, unit.history)
        if res is not None:
            res[0]["dateDernierTraitementEtablissement"] = ts
            self.emit_etab(*res)
        return True

    def siege_transfer(self, unit: _Unit) -> bool:
        old_siret = unit.row["siren"] + unit.row["nicSiegeUniteLegale"]
        if old_siret not in unit.etabs or unit.etabs[old_siret][0]["etatAdministratifEtablissement"] != "A":
            return False
        orow, ohist = unit.etabs[old_siret]
        closed = self.new_et_period(
            orow,
            ohist,
            {"etatAdministratifEtablissement": "F"},
            ("changementEtatAdministratifEtablissement",),
        )
        if closed is None:
            return False
        nic = self.new_nic(unit)
        if not self.new_ul_period(unit, {"nicSiegeUniteLegale": nic}, ("changementNicSiegeUniteLegale",)):
            return False
        ts = self.ts()
        unit.row["dateDernierTraitementUniteLegale"] = ts
        new_row, new_hist = self.new_etab_row(unit, nic, ts, siege=True)
        if orow["statutDiffusionEtablissement"] == "P":
            new_row, new_hist = _mask_etab(unit, new_row, new_hist)
        closed[0]["etablissementSiege"] = "false"
        closed[0]["dateDernierTraitementEtablissement"] = ts
        self.emit_unit(unit.row, unit.history)
        self.emit_etab(*closed)
        self.emit_etab(new_row, new_hist)
        self.emit_lien(
            {
                "siretEtablissementPredecesseur": old_siret,
                "siretEtablissementSuccesseur": new_row["siret"],
                "dateLienSuccession": self.iso,
                "transfertSiege": "true",
                "continuiteEconomique": "true",
                "dateDernierTraitementLienSuccession": ts,
            }
        )
        return True

    def naf_change(self, unit: _Unit) -> bool:
        cur = unit.row["activitePrincipaleUniteLegale"]
        choices = [p for p in self.dc._naf_pairs if p[0] != cur]
        if not choices:
            return False
        naf, naf25 = self.rng.choice(choices)
        if not self.new_ul_period(
            unit,
            {"activitePrincipaleUniteLegale": naf, "nomenclatureActivitePrincipaleUniteLegale": "NAFRev2"},
            ("changementActivitePrincipaleUniteLegale",),
        ):
            return False
        unit.row["activitePrincipaleNAF25UniteLegale"] = naf25
        unit.row["dateDernierTraitementUniteLegale"] = self.ts()
        self.emit_unit(unit.row, unit.history)
        return True

    def name_change(self, unit: _Unit) -> bool:
        if unit.row["statutDiffusionUniteLegale"] != "O":
            return False
        if unit.row["categorieJuridiqueUniteLegale"] == "1000":
            new = self.rng.choice([n for n in _LAST_NAMES if n != unit.row["nomUsageUniteLegale"]])
            ok = self.new_ul_period(unit, {"nomUsageUniteLegale": new}, ("changementNomUsageUniteLegale",))
        else:
            base = unit.row["denominationUniteLegale"] or self.rng.choice(_WORDS)
            new = f"{base} {self.rng.choice(_WORDS)}"[:120]
            ok = self.new_ul_period(
                unit, {"denominationUniteLegale": new}, ("changementDenominationUniteLegale",)
            )
        if not ok:
            return False
        unit.row["dateDernierTraitementUniteLegale"] = self.ts()
        self.emit_unit(unit.row, unit.history)
        return True

    def diffusion_p(self, unit: _Unit) -> bool:
        if unit.row["statutDiffusionUniteLegale"] != "O":
            return False
        ts = self.ts()
        person = unit.row["categorieJuridiqueUniteLegale"] == "1000"
        masked = MASKED_UL_PERSON_COLUMNS if person else MASKED_UL_COMPANY_COLUMNS
        unit.row["statutDiffusionUniteLegale"] = "P"
        for c in masked:
            if unit.row.get(c):
                unit.row[c] = ND
        unit.history = [{c: (ND if c in masked and v else v) for c, v in h.items()} for h in unit.history]
        unit.row["dateDernierTraitementUniteLegale"] = ts
        self.emit_unit(unit.row, unit.history)
        for siret in sorted(unit.etabs):
            row, hist = unit.etabs[siret]
            row, hist = _mask_etab(unit, row, hist)
            row["dateDernierTraitementEtablissement"] = ts
            self.emit_etab(row, hist)
        return True

    def new_etablissement(self, unit: _Unit) -> bool:
        if unit.row["etatAdministratifUniteLegale"] != "A":
            return False
        nic = self.new_nic(unit)
        row, hist = self.new_etab_row(unit, nic, self.ts(), siege=False)
        if unit.row["statutDiffusionUniteLegale"] == "P":
            row, hist = _mask_etab(unit, row, hist)
        self.emit_etab(row, hist)
        return True


def _mask_etab(unit: _Unit, row: dict, hist: list[dict]) -> tuple[dict, list[dict]]:
    """Partial diffusion of an établissement: `[ND]` in its non-empty maskable columns (commune stays)."""
    cols = set(MASKED_ETABLISSEMENT_COLUMNS)
    if unit.row["categorieJuridiqueUniteLegale"] == "1000":
        cols |= set(MASKED_ETABLISSEMENT_PERSON_COLUMNS)
    cols &= MASKABLE_COLUMNS["etablissements"]
    row = {c: (ND if c in cols and v else v) for c, v in row.items()}
    row["statutDiffusionEtablissement"] = "P"
    hist = [{c: (ND if c in cols and v else v) for c, v in h.items()} for h in hist]
    return row, hist


def _row_period(row: dict, columns: list[str]) -> dict:
    period = {c: ("false" if c.startswith("changement") else row.get(c, "")) for c in columns}
    period["dateFin"] = ""
    return period


def _period_key(h: dict):
    return (h.get("dateFin") in ("", None), h.get("dateFin") or "", h.get("dateDebut") or "")


def _dicts(rel) -> list[dict]:
    cols = [d[0] for d in rel.description]
    return [{c: _blank(v) for c, v in zip(cols, r, strict=True)} for r in rel.fetchall()]

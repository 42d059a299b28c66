"""Real Sirene stock rows as published in INSEE's open-data stock files (data.gouv.fr), and a
helper writing them as a (tiny) stock in a given layout and format. Used by the loader tests."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import duckdb

from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES, StockFile

# 4.1 StockUniteLegale, format 3.11 (34 columns), late-2025 stock.
UL_311 = """\
000325175,O,,2000-09-26,,M,THIERRY,,,,THIERRY,,,NN,,2024-03-22T14:26:06,6,PME,2023,2018-02-07,A,JANOYER,,,,,,1000,32.12Z,NAFRev2,00065,,,
001807254,O,,1972-05-01,,M,JACQUES-LUCIEN,,,,JACQUES-LUCIEN,,,NN,,2024-03-22T14:26:06,5,,,2014-12-31,C,BRETON,,,,,,1000,85.59A,NAFRev2,00022,,,
005410220,O,true,1954-12-25,,M,GEORGES,,,,GEORGES,,,NN,,2024-03-22T14:26:06,1,,,1988-03-31,C,WATTEBLED,,,,,,1000,22.02,NAP,00015,,,
005410345,O,true,,,M,MICHEL,,,,MICHEL,,,NN,,2024-03-22T14:26:06,1,,,1984-12-25,C,DEBRAY,,,,,,1000,79.06,NAP,00010,,,
005410394,O,true,1954-12-25,,M,ROBERT,ALFRED,,,ROBERT,,,NN,,2024-03-22T14:26:06,1,,,1987-12-01,C,DAULT,,,,,,1000,64.42,NAP,00018,,,
005410428,O,true,1954-01-01,,M,RENE,PIERRE,,,RENE,,,NN,,2024-03-22T14:26:06,1,,,1989-06-11,C,DINGEON,,,,,,1000,70.2C,NAF1993,00014,,,
005410436,O,true,,,M,MARCEL,,,,MARCEL,,,NN,,2024-03-22T14:26:06,1,,,1984-12-25,C,CARBONNET,,,,,,1000,57.11,NAP,00017,,,
005410485,O,true,,,M,RENE,ALFRED,,,RENE,,,NN,,2024-03-22T14:26:06,1,,,1985-12-25,C,LECRIVAIN,,,,,,1000,64.42,NAP,00014,,,
005410493,O,true,1954-12-25,,M,PIERRE,,,,PIERRE,,,NN,,2024-03-22T14:26:06,1,,,1985-12-01,C,GODIN,,,,,,1000,86.06,NAP,00018,,,
005411582,O,,1954-01-01,,M,RENE,PIERRE,ANDRE,,RENE,,,NN,,2024-03-22T14:26:06,4,,,2008-01-01,A,GERVOISE,,,,,,1000,68.20B,NAFRev2,00017,,,
"""

# 4.1, 35-column (NAF25) form of the first row.
UL_CURRENT_FIRST = (
    "000325175,O,,2000-09-26,,M,THIERRY,,,,THIERRY,,,NN,,2025-12-06T10:43:55,6,PME,2023,2018-02-07,A,"
    "JANOYER,,,,,,1000,32.12Z,NAFRev2,00065,,,,32.12Y"
)

# 4.1, 33-column 3.9 format (2018 data).
UL_39 = """\
000325175,O,,2000-09-26,,M,THIERRY,,,,THIERRY,,,,,2018-07-10T14:17:15,6,PME,2016,2018-02-07,A,JANOYER,,,,,,1000,32.12Z,NAFRev2,00065,,N
001807254,O,,1972-05-01,,M,JACQUES-LUCIEN,,,,JACQUES-LUCIEN,,,,,2016-07-10T05:00:06,5,,,2014-12-31,C,BRETON,,,,,,1000,85.59A,NAFRev2,00022,,N
005410220,O,true,1954-12-25,,M,GEORGES,,,,GEORGES,,,,,,1,,,1988-03-31,C,WATTEBLED,,,,,,1000,22.02,NAP,00015,,N
"""

# 4.2 StockEtablissement, 48-column 3.9 CSV rows (2021 stock).
ETAB_39 = """\
000325175,00016,00032517500016,O,2000-09-26,,,3212ZZ,2015-03-18T00:58:59,false,3,,,,,MANIHI COTE MONTAGNE TUAMOTU,98770,MANIHI,,,98727,,,,,,,,,,,,,,,,,,,2009-05-27,F,,,,,32.12Z,NAFRev2,N
000325175,00024,00032517500024,O,2008-05-20,,,,2011-12-12T09:40:04,false,2,,1,,PL,LEONCE DE SEYNES,84140,AVIGNON,,,84007,,,,,,,,,,,,,,,,,,,2011-10-21,F,TAHITI PERLES CREATIONS,,,,47.89Z,NAFRev2,N
"""

# 4.2, 2026 records read from the official Parquet (first 40 columns shown; the others are null).
ETAB_2026 = [
    {
        "siren": "000325175",
        "nic": "00016",
        "siret": "00032517500016",
        "statutDiffusionEtablissement": "O",
        "dateCreationEtablissement": "2000-09-26",
        "trancheEffectifsEtablissement": "NN",
        "activitePrincipaleRegistreMetiersEtablissement": "3212ZZ",
        "dateDernierTraitementEtablissement": "2024-03-22 15:40:57",
        "etablissementSiege": "false",
        "nombrePeriodesEtablissement": "3",
        "libelleVoieEtablissement": "MANIHI COTE MONTAGNE TUAMOTU",
        "codePostalEtablissement": "98770",
        "libelleCommuneEtablissement": "MANIHI",
        "codeCommuneEtablissement": "98727",
    },
    {
        "siren": "000325175",
        "nic": "00024",
        "siret": "00032517500024",
        "statutDiffusionEtablissement": "O",
        "dateCreationEtablissement": "2008-05-20",
        "trancheEffectifsEtablissement": "NN",
        "dateDernierTraitementEtablissement": "2024-03-30 05:08:28",
        "etablissementSiege": "false",
        "nombrePeriodesEtablissement": "2",
        "numeroVoieEtablissement": "1",
        "typeVoieEtablissement": "PLACE",
        "libelleVoieEtablissement": "LEONCE DE SEYNES",
        "codePostalEtablissement": "84000",
        "libelleCommuneEtablissement": "AVIGNON",
        "codeCommuneEtablissement": "84007",
        "identifiantAdresseEtablissement": "84007cvsr_B",
        "coordonneeLambertAbscisseEtablissement": "851150.0982592739",
        "coordonneeLambertOrdonneeEtablissement": "6317267.146094748",
    },
    {
        "siren": "000325175",
        "nic": "00032",
        "siret": "00032517500032",
        "statutDiffusionEtablissement": "O",
        "dateCreationEtablissement": "2009-05-27",
        "trancheEffectifsEtablissement": "NN",
        "dateDernierTraitementEtablissement": "2024-03-30 05:56:39",
        "etablissementSiege": "false",
        "nombrePeriodesEtablissement": "2",
        "complementAdresseEtablissement": "ECONOMIS",
        "numeroVoieEtablissement": "6",
        "typeVoieEtablissement": "AVENUE",
        "libelleVoieEtablissement": "FRANCOIS MAURIAC",
        "codePostalEtablissement": "84000",
        "libelleCommuneEtablissement": "AVIGNON",
        "codeCommuneEtablissement": "84007",
        "identifiantAdresseEtablissement": "840072225_B",
        "coordonneeLambertAbscisseEtablissement": "848084.2366812509",
        "coordonneeLambertOrdonneeEtablissement": "6316548.347114814",
    },
]


def csv_text(header: list[str], rows: list[dict[str, str]]) -> str:
    """INSEE's dialect: `,`, quote only when needed, empty string for null, LF."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(c, "") for c in header])
    return buf.getvalue()


def parse_rows(header: list[str], text: str) -> list[dict[str, str]]:
    return [dict(zip(header, rec, strict=True)) for rec in csv.reader(io.StringIO(text))]


def write_zip(out_dir: Path, stock: StockFile, header: list[str], rows: list[dict[str, str]]) -> Path:
    path = out_dir / stock.zip_name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(stock.csv_member, csv_text(header, rows))
    return path


def write_parquet(
    out_dir: Path, stock: StockFile, header: list[str], rows: list[dict[str, str]], types: dict
) -> Path:
    """Writes rows as Parquet, casting the columns listed in `types` (e.g. {"nic": "BIGINT"})."""
    path = out_dir / stock.parquet_name
    csv_path = out_dir / f".{stock.name}.csv"
    csv_path.write_text(csv_text(header, rows), encoding="utf-8")
    con = duckdb.connect()
    cols = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in header) + "}"
    select = ", ".join(
        f'TRY_CAST(nullif("{c}", \'\') AS {types[c]}) AS "{c}"' if c in types else f'"{c}"' for c in header
    )
    con.execute(
        f"COPY (SELECT {select} FROM read_csv('{csv_path}', header=true, columns={cols}, auto_detect=false)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    con.close()
    csv_path.unlink()
    return path


def ul_rows(layout: str) -> list[dict[str, str]]:
    if layout == "3.9":
        return parse_rows(UNITES_LEGALES.header("3.9"), UL_39)
    rows = parse_rows(UNITES_LEGALES.header("3.11"), UL_311)
    if layout == "current":
        first = parse_rows(UNITES_LEGALES.header("current"), UL_CURRENT_FIRST)[0]
        rows = [first] + [dict(r, activitePrincipaleNAF25UniteLegale="") for r in rows[1:]]
    return rows


def etab_rows(layout: str) -> list[dict[str, str]]:
    if layout == "3.9":
        return parse_rows(ETABLISSEMENTS.header("3.9"), ETAB_39)
    return [
        dict(r, dateDernierTraitementEtablissement=r["dateDernierTraitementEtablissement"].replace(" ", "T"))
        for r in ETAB_2026
    ]


def write_sample_stock(
    out_dir: Path,
    layout: str = "current",
    fmt: str = "zip",
    extra_etab: list[dict] = (),
    extra_columns: dict[str, str] | None = None,
    etab_parquet_types: dict | None = None,
) -> Path:
    """The real sample rows as StockUniteLegale + StockEtablissement of the given layout (other files absent).

    extra_etab: more établissement rows (dicts); extra_columns: {name: value} appended to every
    établissement row as unknown trailing columns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ul_header = UNITES_LEGALES.header(layout)
    et_header = ETABLISSEMENTS.header(layout) + list(extra_columns or {})
    ets = [dict(r, **(extra_columns or {})) for r in etab_rows(layout) + list(extra_etab)]
    if fmt == "zip":
        write_zip(out_dir, UNITES_LEGALES, ul_header, ul_rows(layout))
        write_zip(out_dir, ETABLISSEMENTS, et_header, ets)
    else:
        from mirror.core.schema import insee_parquet_type

        ul_types = {c: insee_parquet_type("unites_legales", c) for c in ul_header}
        et_types = {
            c: insee_parquet_type("etablissements", c) for c in et_header if c in ETABLISSEMENTS.columns
        }
        et_types.update(etab_parquet_types or {})
        write_parquet(
            out_dir,
            UNITES_LEGALES,
            ul_header,
            ul_rows(layout),
            {k: v for k, v in ul_types.items() if v != "VARCHAR"},
        )
        write_parquet(
            out_dir, ETABLISSEMENTS, et_header, ets, {k: v for k, v in et_types.items() if v != "VARCHAR"}
        )
    return out_dir

"""Facts of the change lists (`mirror changes`, watchlists, the comparison of monthly stocks): their
columns, kinds and compared variables, shared by mirror.load (which compares a new snapshot with the
state it replaces) and mirror.serve.changes (which lists the changes)."""

from __future__ import annotations

from mirror.core.schema import STOCK_FILES_BY_KEY
from mirror.core.sql import render

KINDS = (
    "creation", "cessation", "fermeture", "reactivation", "siege", "name", "activity", "address", "effectif",
    "categorie_juridique", "diffusion", "removed", "doublon", "succession", "other",
)  # fmt: skip
COLUMNS = (
    "identifier", "level", "kind", "field", "old_value", "new_value", "effective_date", "processing_date",
    "source", "day",
)  # fmt: skip
# table: (key, level, creation date, historique)
TABLES = {
    "unites_legales": ("siren", "unite_legale", "dateCreationUniteLegale", "unites_legales_historique"),
    "etablissements": ("siret", "etablissement", "dateCreationEtablissement", "etablissements_historique"),
}
_NOT_COMPARED = {"siren", "nic", "siret", "dateDebut"}
# The comparison of a new monthly snapshot with the state it replaces, in the snapshot's folder (written in
# the build folder, so published with it by one rename).
STOCK_CHANGES_FILE = "stock_changes.parquet"


def compared_columns(table: str) -> list[str]:
    """The variables whose changes are reported: the stock file's, but keys and bookkeeping."""
    return [
        c
        for c in STOCK_FILES_BY_KEY[table].columns
        if c not in _NOT_COMPARED and not c.startswith(("dateDernierTraitement", "nombrePeriodes"))
    ]


def historised_columns(historique: str) -> list[str]:
    """The variables a period of `historique` gives its row: the historique file's columns but the keys,
    the period's end and the changement* flags (which say what changed, not what it was)."""
    return [
        c
        for c in STOCK_FILES_BY_KEY[historique].columns
        if c not in ("siren", "nic", "siret", "dateFin") and not c.startswith("changement")
    ]


def rows_sql(level: str, first: str, source: str) -> str:
    """sql/changes/rows.sql for a table's level: the changes' rows from the relation `compared` that ends the
    query of the days (sql/changes/changes.sql) and of a stock comparison (sql/changes/stock.sql)."""
    return render(
        "changes/rows.sql", level=level, first=first, kinds=render("changes/field_kinds.sql"), source=source
    )

-- SQLite (DATA_DIR/lookup.sqlite): the company search index (mirror.lookup.search_index.create_schema).
--
-- search_fts: one FTS5 row per unité légale, rowid = the siren as an integer (what matches; search_nom and
-- search_enseignes below rank). Text columns `nom`
-- (dénomination, sigle, dénominations usuelles, person names, hyphenated words also joined) and `enseignes`
-- (enseignes and dénominations usuelles of the siège and open établissements); filter columns, matched as
-- FTS5 column filters: `departement`, `code_postal` (siège and open établissements, space-separated),
-- `naf` (activitePrincipaleUniteLegale without the dot, '1071c'), `etat` ('a' / 'c'), `commune`, `region`,
-- `epci` (siège and open établissements, like `departement`), and the unit's `section` (NAF rév. 2 section
-- letter), `tranche` (trancheEffectifsUniteLegale), `categorie` (categorieEntreprise), `nature`
-- (categorieJuridiqueUniteLegale) and `flags` ('ess1' or 'ess0', 'mission1/0', 'asso1/0', 'ei1/0': the est_*
-- filters of recherche-entreprises that Sirene can answer, both values a term).
-- unicode61 remove_diacritics 2 folds case and accents; apostrophes and hyphens are separators.
-- prefix='3': a prefix index for 3-letter prefixes (autocompletion reads one doclist); longer prefixes
-- merge the doclists of their few terms, 2-letter ones those of many (measured at 1 M units: the '2 3 4'
-- indexes tripled the FTS data, 130 MB against 43 MB without and 71 MB with '3' alone).
CREATE VIRTUAL TABLE search_fts USING fts5(
    nom, enseignes, departement, code_postal, naf, etat, commune, region, epci, section, tranche, categorie,
    nature, flags,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '3'
);

-- The ranking reads two contentless FTS5 indexes of search_fts' text, never search_fts itself: FTS5's bm25
-- divides by the length of the whole row, every column counted, and over search_fts the filter columns (a
-- code postal, a commune, an EPCI... per open établissement) sank the units with many établissements
-- (measured at 1 M units: the unit with 1,480 of them ranked 12,318th of the 12,323 units holding a word of
-- its name, outside the served window). Both are written by mirror.lookup.search_index.
--
-- search_nom: the `nom` column alone, the first tier: the units holding every word in their names, ranked
-- by their names' bm25, come before those that need an enseigne. It is also the cheaper ranking: a common
-- word has fewer name matches than text matches, in one-column rows (measured at 1 M units: "boulangerie"
-- 10,222 name matches against 12,323, ranked as fast as an FTS5 index of the names alone, where an index of
-- names and enseignes took 1.3 to 1.5 times as long).
CREATE VIRTUAL TABLE search_nom USING fts5(
    nom,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '3'
);

-- search_enseignes: `nom` and `enseignes` of the units that have enseignes (trim(enseignes) <> ''), the
-- second tier: the units matching only with an enseigne for a word. A unit without enseignes that matches
-- the text matches it in its name (first tier), so the others need not be here (19 % of the units at 1 M:
-- the second tier and its count read doclists a fifth as long).
CREATE VIRTUAL TABLE search_enseignes USING fts5(
    nom, enseignes,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '3'
);

-- The bm25 weights are the tiers' queries' (sql/lookup/search_tier_*.sql).

-- search_exact: the exact-name keys (mirror.lookup.search.exact_keys: a 64-bit hash of the words of the
-- name, and of the sigle), so that an exact name match is found among the ranked window by one probe,
-- without reading every candidate's name (a hash is checked against the unit's name before it counts).
CREATE TABLE search_exact (
    key INTEGER NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (key, id)
) WITHOUT ROWID;

-- The terms of the index with their document counts (typo tolerance: edit-distance-1 variants).
CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, row);

-- Display and ranking fields, id = search_fts rowid = CAST(siren AS INTEGER).
CREATE TABLE search_units (
    id INTEGER PRIMARY KEY,
    siren TEXT NOT NULL,
    nom_complet TEXT,
    sigle TEXT,
    siret_siege TEXT,
    code_postal TEXT,
    commune TEXT,
    departement TEXT,
    activite_principale TEXT,
    etat_administratif TEXT,
    categorie_juridique TEXT,
    tranche_effectif_salarie TEXT,
    etablissements_ouverts INTEGER NOT NULL,
    etablissements INTEGER NOT NULL,
    section TEXT,
    categorie_entreprise TEXT,
    flags TEXT NOT NULL
);

-- The siège and the open établissements of every indexed unit (recherche-entreprises' siege and
-- matching_etablissements: the établissement-level filters are checked on these rows), id = the siret as an
-- integer, so a unit's rows are the range [siren * 100000, siren * 100000 + 99999]. Address, coordinates and
-- codes come from the *_diffusibles views ('[ND]' and NULL coordinates where masked).
CREATE TABLE search_etablissements (
    id INTEGER PRIMARY KEY,
    siege INTEGER NOT NULL,
    etat TEXT,
    code_postal TEXT,
    commune TEXT,
    departement TEXT,
    region TEXT,
    epci TEXT,
    latitude REAL,
    longitude REAL
);

-- The coordinates of those établissements, of units diffusible 'O', as an R*Tree of points (near_point: a
-- bounding-box probe, then the
-- exact distance on search_etablissements' latitude / longitude; the tree stores 32-bit floats, rounded
-- outwards, so the box never loses a point).
CREATE VIRTUAL TABLE search_geo USING rtree(id, min_lat, max_lat, min_lon, max_lon);

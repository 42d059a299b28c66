-- Liens de succession of one établissement, both directions (mirror.serve.documents.get_successions: API Entreprise
-- /v3|v4/insee/sirene/etablissements/{siret}/successions), from the catalog's `liens_succession` view (INSEE's
-- StockEtablissementLiensSuccession merged with the daily changes).
-- One bound parameter (?): the siret.
-- direction 'predecesseur': the row's siret precedes the asked one; 'successeur': it succeeds it.
-- The last row (direction NULL) always comes and says whether the mirror knows the établissement.
WITH asked AS (SELECT CAST(? AS VARCHAR) AS siret)
SELECT
    CASE WHEN l.siretEtablissementSuccesseur = a.siret THEN 'predecesseur' ELSE 'successeur' END AS direction,
    CASE WHEN l.siretEtablissementSuccesseur = a.siret THEN l.siretEtablissementPredecesseur
         ELSE l.siretEtablissementSuccesseur END AS siret,
    strftime(l.dateLienSuccession, '%Y-%m-%d') AS date_succession,
    l.transfertSiege AS transfert_siege,
    l.continuiteEconomique AS continuite_economique,
    NULL::BOOLEAN AS known
FROM liens_succession l, asked a
WHERE l.siretEtablissementPredecesseur = a.siret OR l.siretEtablissementSuccesseur = a.siret
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL,
       EXISTS (SELECT 1 FROM etablissements_departements e, asked a WHERE e.siret = a.siret)
ORDER BY direction NULLS LAST, date_succession, siret

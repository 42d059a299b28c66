SELECT departement, count(*) AS actifs FROM etablissements WHERE etatAdministratifEtablissement = 'A' GROUP BY departement ORDER BY actifs DESC LIMIT 5;

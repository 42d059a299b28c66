-- siret -> departement of every établissement: the snapshot's index (sorted by siret, small row groups)
-- plus the rows of the daily deltas. mirror.documents reads the département of a siret here, then opens
-- only that partition of `etablissements` instead of every partition file.
--   ${index}: SELECT siret, departement over the snapshot's index (or the etablissements view for
--             snapshots built before the index existed)
--   ${deltas}: "" or a UNION ALL over the delta days' établissements
CREATE OR REPLACE VIEW etablissements_departements AS
${index}
${deltas};

-- Units with more than ${max_etabs} établissements: the change stream leaves them alone (loading all their
-- établissements for each change would be slow). Filled in by mirror.synthetic.upstream.changes.
CREATE TABLE big_units AS
SELECT siren FROM etablissements GROUP BY siren HAVING count(*) > ${max_etabs};

-- Point in time (mirror.serve.documents.point_in_time): the periods of ${source} that had started on the day
-- held by as_of_day; the period valid that day is open (dateFin NULL), as it was then.
SELECT h.* REPLACE (CASE WHEN h.dateFin >= d.day THEN NULL ELSE h.dateFin END AS dateFin)
FROM ${source} h
CROSS JOIN as_of_day d
WHERE h.dateDebut IS NULL OR h.dateDebut <= d.day;

-- The liens de succession after day ${day} (a DATE literal): the stock's plus every overlay
-- lien of the days up to it (a lien is never replaced, only added).
SELECT * EXCLUDE (day, seq) FROM ov_liens_succession WHERE day <= ${day}
UNION ALL BY NAME
SELECT * FROM liens_succession;

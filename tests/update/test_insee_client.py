"""InseeClient against scripted HTTP servers on 127.0.0.1 (real sockets), with a fake clock (no real sleeps)."""

from __future__ import annotations

import json
import logging
import threading
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from mirror.core.errors import BadInput, IntegrityError, MirrorError, UpstreamUnavailable
from mirror.update.insee_client import InseeClient, RateLimiter, day_query, parse_informations, range_query

KEY = "s3cr3t-KEY-do-not-leak-7f9a"


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Scripted:
    """A real HTTP server answering from a script: a function (request dict) -> (status, body, headers)."""

    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _do(self):
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                req = {
                    "method": self.command,
                    "path": parts.path,
                    "params": {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    "form": {k: v[-1] for k, v in parse_qs(body).items()},
                    "headers": dict(self.headers),
                    "url_len": len(self.path),
                }
                outer.requests.append(req)
                status, payload, headers = outer.script(req)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _do

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api-sirene/3.11"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(script):
        s = Scripted(script)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def client(url, clock=None, **kw):
    clock = clock or FakeClock()
    return InseeClient(url, KEY, clock=clock, sleep=clock.sleep, **kw), clock


def pages_script(records, page_size, total=None, extra_page=True, with_total=True):
    """Cursor pagination like INSEE: cursors encode the index; the end page repeats the cursor."""

    def script(req):
        p = req["params"] or req["form"]
        cur = p.get("curseur", "*")
        start = 0 if cur == "*" else int(cur[1:])
        page = records[start : start + page_size]
        nxt = f"c{start + len(page)}" if page else cur
        if not extra_page and start + len(page) >= len(records):
            nxt = cur
        header = {
            "statut": 200,
            "message": "OK",
            "total": len(records) if total is None else total,
            "debut": 0,
            "nombre": len(page),
            "curseur": cur,
            "curseurSuivant": nxt,
        }
        if not with_total:
            del header["total"]
        return 200, {"header": header, "unitesLegales": page}, {}

    return script


def test_pagination_extra_empty_page_key_header_and_params(scripted):
    recs = [{"siren": f"{i:09d}"} for i in range(25)]
    srv = scripted(pages_script(recs, 10, with_total=False))  # no total to stop at: ends on the empty page
    c, _ = client(srv.url)
    got = list(c.iter_unites_legales("dateDernierTraitementUniteLegale:2026-10-05"))
    assert got == recs
    assert len(srv.requests) == 4  # 3 pages + the extra empty page
    assert c.requests_made == 4
    first = srv.requests[0]
    assert first["path"] == "/api-sirene/3.11/siren"
    assert first["params"] == {
        "q": "dateDernierTraitementUniteLegale:2026-10-05",
        "nombre": "1000",
        "curseur": "*",
    }
    assert [r["params"]["curseur"] for r in srv.requests] == ["*", "c10", "c20", "c25"]
    assert first["headers"]["X-INSEE-Api-Key-Integration"] == KEY


def test_total_cut_off_saves_the_empty_page(scripted):
    recs = [{"siren": f"{i:09d}"} for i in range(25)]
    srv = scripted(pages_script(recs, 10))
    c, _ = client(srv.url)
    assert len(list(c.iter_unites_legales("q"))) == 25
    assert len(srv.requests) == 3


@pytest.mark.parametrize("total", [3, 100])
def test_cursor_repeat_stops_and_short_pages_are_an_error(scripted, total):
    """A cursor looping back ends the pages; short of the header's total, records were lost: an error."""

    def script(req):
        header = {
            "statut": 200,
            "total": total,
            "nombre": 1,
            "curseur": req["params"]["curseur"],
            "curseurSuivant": "A" if req["params"]["curseur"] != "A" else "B",
        }
        if req["params"]["curseur"] == "B":
            header["curseurSuivant"] = "A"  # loops back to an already used cursor
        return 200, {"header": header, "etablissements": [{"siret": req["params"]["curseur"]}]}, {}

    srv = scripted(script)
    c, _ = client(srv.url)
    if total == 100:
        with pytest.raises(
            IntegrityError, match=r"/siret\?q=q \(page 3\) is malformed: .* 3 of the header total 100"
        ):
            list(c.iter_etablissements("q"))
        return
    got = list(c.iter_etablissements("q"))
    assert [r["siret"] for r in got] == ["*", "A", "B"]
    assert len(srv.requests) == 3
    assert srv.requests[0]["path"].endswith("/siret")


def test_404_is_zero_results(scripted):
    srv = scripted(lambda req: (404, {"header": {"statut": 404, "message": "Aucun élément trouvé"}}, {}))
    c, _ = client(srv.url)
    assert list(c.iter_liens_succession("dateDernierTraitementLienSuccession:2026-10-05")) == []
    assert srv.requests[0]["path"].endswith("/siret/liensSuccession")
    assert c.requests_made == 1


def test_429_storm_honours_retry_after(scripted):
    state = {"n": 0}

    def script(req):
        state["n"] += 1
        if state["n"] <= 3:
            return 429, {"header": {"statut": 429}}, {"Retry-After": str(7 * state["n"])}
        return pages_script([{"siren": "1"}], 10)(req)

    srv = scripted(script)
    c, clock = client(srv.url, rate_per_minute=600)
    assert list(c.iter_unites_legales("q")) == [{"siren": "1"}]
    assert c.waits == [7.0, 14.0, 21.0]
    assert c.requests_made == 4
    # the fake clock slept the Retry-After values; the limiter spacing (0.1 s) is already covered by them
    assert [s for s in clock.sleeps if s >= 1] == [7.0, 14.0, 21.0]


def test_429_without_retry_after_backs_off_exponentially_with_jitter(scripted):
    state = {"n": 0}

    def script(req):
        state["n"] += 1
        if state["n"] <= 4:
            return 429, {}, {}
        return pages_script([{"siren": "1"}], 10)(req)

    srv = scripted(script)
    c, _ = client(srv.url)
    list(c.iter_unites_legales("q"))
    assert len(c.waits) == 4
    for i, w in enumerate(c.waits):
        assert 2.0 * 2**i * 0.5 <= w <= 2.0 * 2**i  # base 2 s doubled, jitter in [50 %, 100 %]


def test_5xx_storm_then_success(scripted):
    state = {"n": 0}

    def script(req):
        state["n"] += 1
        if state["n"] <= 5:
            return [500, 502, 503, 504, 503][state["n"] - 1], b"<html>oops</html>", {}
        return pages_script([{"siren": "1"}, {"siren": "2"}], 10)(req)

    srv = scripted(script)
    c, _ = client(srv.url)
    assert len(list(c.iter_unites_legales("q"))) == 2
    assert len(c.waits) == 5
    assert c.requests_made == 6


def test_5xx_forever_is_a_clear_error(scripted):
    srv = scripted(lambda req: (503, {"header": {"statut": 503}}, {}))
    c, _ = client(srv.url, max_retries=3)
    with pytest.raises(MirrorError) as exc:
        list(c.iter_unites_legales("q"))
    msg = str(exc.value)
    assert "unavailable" in msg and "4 attempts" in msg and "HTTP 503" in msg and "\n" not in msg
    assert len(srv.requests) == 4


def test_connection_refused_is_retried_then_clear_error():
    c, _ = client("http://127.0.0.1:9/api-sirene/3.11", max_retries=2)  # port 9 (discard): refused
    with pytest.raises(MirrorError, match="connection error"):
        c.informations()
    assert c.requests_made == 3 and len(c.waits) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_key_rejected(scripted, status):
    srv = scripted(
        lambda req: (status, {"header": {"statut": status, "message": "Jeton d'accès manquant"}}, {})
    )
    c, _ = client(srv.url)
    with pytest.raises(MirrorError, match="INSEE API key rejected"):
        list(c.iter_unites_legales("q"))
    assert len(srv.requests) == 1  # never retried


def test_post_fallback_on_414_then_sticks_to_post(scripted):
    def script(req):
        if req["method"] == "GET":
            return 414, {"header": {"statut": 414, "message": "Requête trop longue"}}, {}
        return pages_script([{"siren": str(i)} for i in range(15)], 10)(req)

    srv = scripted(script)
    c, _ = client(srv.url)
    assert len(list(c.iter_unites_legales("siren:1 OR siren:2"))) == 15
    methods = [r["method"] for r in srv.requests]
    assert methods == ["GET", "POST", "POST"]
    post = srv.requests[1]
    assert post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert post["form"] == {"q": "siren:1 OR siren:2", "nombre": "1000", "curseur": "*"}
    assert post["params"] == {}


def test_long_query_goes_straight_to_post(scripted):
    srv = scripted(pages_script([{"siren": "1"}], 10))
    c, _ = client(srv.url)
    q = " OR ".join(f"siren:{i:09d}" for i in range(200))  # ~3000 characters
    list(c.iter_unites_legales(q))
    assert [r["method"] for r in srv.requests] == ["POST"]
    assert srv.requests[0]["form"]["q"] == q


def test_lookup_never_follows_redirects(scripted):
    def script(req):
        if req["path"].endswith("/siren/000000018"):
            return 301, {"header": {"statut": 301}}, {"Location": "/api-sirene/3.11/siren/000000026"}
        if req["path"].endswith("/siren/000000026"):
            return 200, {"header": {"statut": 200}, "uniteLegale": {"siren": "000000026"}}, {}
        return 404, {"header": {"statut": 404}}, {}

    srv = scripted(script)
    c, _ = client(srv.url)
    with pytest.raises(MirrorError, match="doublon"):
        c.unite_legale("000000018")
    assert len(srv.requests) == 1
    assert c.unite_legale("000000026") == {"siren": "000000026"}
    assert c.etablissement("00000002600011") is None


def test_key_never_in_logs_or_errors(scripted, caplog):
    caplog.set_level(logging.DEBUG)
    state = {"n": 0}

    def script(req):
        state["n"] += 1
        if state["n"] == 1:
            return 503, {}, {}
        if state["n"] == 2:
            return 429, {}, {"Retry-After": "1"}
        return 401, {"header": {"statut": 401}}, {}

    srv = scripted(script)
    c, _ = client(srv.url)
    with pytest.raises(MirrorError) as exc:
        list(c.iter_unites_legales("q"))
    bad, _ = client("http://127.0.0.1:9/x", max_retries=1)
    with pytest.raises(MirrorError) as exc2:
        bad.informations()
    text = caplog.text + str(exc.value) + repr(exc.value) + str(exc2.value) + repr(c) + repr(bad)
    assert caplog.records  # something was logged (retries, urllib3 debug lines)
    assert KEY not in text
    assert KEY not in str(vars(exc.value)) and KEY not in str(vars(exc2.value))


def test_missing_or_malformed_key_is_an_error(scripted):
    with pytest.raises(MirrorError, match="INSEE_API_KEY"):
        InseeClient("http://127.0.0.1:9", "")
    with pytest.raises(MirrorError, match="INSEE_API_KEY") as exc:
        InseeClient("http://127.0.0.1:9", "ab cd\x01")
    assert "ab cd" not in str(exc.value)
    srv = scripted(lambda req: (200, {"header": {"statut": 200}}, {}))
    c = InseeClient(srv.url, KEY + "\n", sleep=lambda s: None)  # trailing newline of a key file
    c.informations()
    assert srv.requests[0]["headers"]["X-INSEE-Api-Key-Integration"] == KEY


def test_rate_limiter_spacing_with_fake_clock():
    clock = FakeClock()
    lim = RateLimiter(30, clock, clock.sleep)
    starts = []
    for _ in range(5):
        lim.acquire()
        starts.append(clock.now)
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [2.0, 2.0, 2.0, 2.0]
    clock.now += 10  # idle time is not banked beyond one interval
    lim.acquire()
    t = clock.now
    lim.acquire()
    assert clock.now - t == 2.0


def test_rate_limiter_shared_by_all_calls_of_a_client(scripted):
    srv = scripted(
        lambda req: (200, {"header": {"statut": 200}, "datesDernieresMisesAJourDesDonnees": []}, {})
    )
    clock = FakeClock()
    c, _ = client(srv.url, clock=clock, rate_per_minute=12)  # one call every 5 s
    c.informations()
    c.informations()
    c.unite_legale("000000018")
    assert clock.sleeps == [5.0, 5.0]
    assert c.requests_made == 3


def test_day_and_range_queries():
    assert day_query("unites_legales", date(2026, 10, 5)) == "dateDernierTraitementUniteLegale:2026-10-05"
    assert day_query("siret", date(2026, 10, 5)) == "dateDernierTraitementEtablissement:2026-10-05"
    assert day_query("liens_succession", date(2026, 1, 2)) == "dateDernierTraitementLienSuccession:2026-01-02"
    assert (
        range_query("siren", datetime(2026, 10, 4, 5, 20, 8))
        == "dateDernierTraitementUniteLegale:[2026-10-04T05:20:08 TO *]"
    )
    with pytest.raises(ValueError):
        day_query("nope", date(2026, 1, 1))


def test_parse_informations_matches_by_name():
    js = {
        "datesDernieresMisesAJourDesDonnees": [
            {
                "collection": "Liens de succession",
                "dateDerniereMiseADisposition": "2024-03-26T11:05:04.000",
                "dateDernierTraitementMaximum": "2024-03-26T10:56:56.543",
            },
            {
                "collection": "Établissements",
                "dateDerniereMiseADisposition": "2024-03-26T14:16:01.000",
                "dateDernierTraitementMaximum": "2024-03-26T07:21:46.628",
                "dateDernierTraitementDeMasse": "2024-03-26T07:21:46.628",
            },
            {
                "collection": "Unités Légales",
                "dateDerniereMiseADisposition": "2024-03-26T07:02:52.000",
                "dateDernierTraitementMaximum": "2024-03-26T05:20:08.847",
                "dateDernierTraitementDeMasse": "2019-06-24",
            },
        ]
    }
    info = parse_informations(js)
    assert info["unites_legales"]["dateDerniereMiseADisposition"] == datetime(2024, 3, 26, 7, 2, 52)
    assert info["unites_legales"]["dateDernierTraitementMaximum"] == datetime(2024, 3, 26, 5, 20, 8, 847000)
    assert info["unites_legales"]["dateDernierTraitementDeMasse"] == datetime(2019, 6, 24)
    assert info["etablissements"]["dateDerniereMiseADisposition"] == datetime(2024, 3, 26, 14, 16, 1)
    assert info["liens_succession"]["dateDernierTraitementDeMasse"] is None
    with pytest.raises(MirrorError, match="etablissements"):
        parse_informations(
            {"datesDernieresMisesAJourDesDonnees": js["datesDernieresMisesAJourDesDonnees"][2:]}
        )


# ---------------------------------------------------------------- bounded waits


def test_retry_after_is_capped_and_waits_are_bounded_by_the_budget(scripted):
    srv = scripted(lambda req: (429, {"header": {"statut": 429}}, {"Retry-After": "86400"}))
    lines = []
    c, clock = client(srv.url, max_retry_after=120, retry_budget=300, notify=lines.append)
    with pytest.raises(UpstreamUnavailable) as exc:
        list(c.iter_unites_legales("q"))
    assert c.waits == [120.0, 120.0]  # a third 120 s wait would overrun the 300 s budget
    assert lines == [
        "INSEE API: HTTP 429 on /siren, waiting 120 s (retry 1/8)",
        "INSEE API: HTTP 429 on /siren, waiting 120 s (retry 2/8)",
    ]
    msg = str(exc.value)
    assert "retry budget 300 s" in msg and "MIRROR_RETRY_BUDGET" in msg and "\n" not in msg
    assert KEY not in msg + "".join(lines)


def test_wait_limits_come_from_the_environment(scripted, monkeypatch):
    monkeypatch.setenv("MIRROR_MAX_RETRY_AFTER", "5")
    monkeypatch.setenv("MIRROR_RETRY_BUDGET", "12")
    srv = scripted(lambda req: (429, {}, {"Retry-After": "3600"}))
    c, _ = client(srv.url)
    with pytest.raises(UpstreamUnavailable, match="retry budget 12 s"):
        c.informations()
    assert c.waits == [5.0, 5.0]
    monkeypatch.setenv("MIRROR_RETRY_BUDGET", "-1")
    with pytest.raises(BadInput, match="MIRROR_RETRY_BUDGET must be a number of seconds >= 0"):
        client(srv.url)


def test_permanent_5xx_with_the_default_budget_waits_at_most_the_budget(scripted):
    srv = scripted(lambda req: (503, {}, {}))
    c, _ = client(srv.url, max_retries=50)
    with pytest.raises(UpstreamUnavailable, match="retry budget 600 s"):
        c.informations()
    assert 0 < sum(c.waits) <= 600


# ---------------------------------------------------------------- answers checked


def _ul(siren="732829320", **changes):
    rec = {
        "siren": siren,
        "dateDernierTraitementUniteLegale": "2026-10-05T08:12:33.123",
        "dateCreationUniteLegale": "1955-01-01",
        "periodesUniteLegale": [
            {"dateFin": None, "dateDebut": "2020-01-01", "etatAdministratifUniteLegale": "A"}
        ],
    }
    rec.update(changes)
    return rec


def _et(siret="35600000000048", **changes):
    rec = {
        "siren": siret[:9],
        "nic": siret[9:],
        "siret": siret,
        "dateDernierTraitementEtablissement": "2026-10-05T08:12:33.123",
        "adresseEtablissement": {"codeCommuneEtablissement": "75056"},
        "adresse2Etablissement": None,
        "uniteLegale": {},
        "periodesEtablissement": [{"dateFin": None, "dateDebut": "2020-01-01"}],
    }
    rec.update(changes)
    return rec


def one_page(array_key, records, total=None):
    header = {"statut": 200, "total": len(records) if total is None else total, "curseur": "*"}
    header["curseurSuivant"] = "*"
    return lambda req: (200, {"header": header, array_key: records}, {})


@pytest.mark.parametrize(
    "body, reason",
    [
        (
            {"header": {"statut": 200, "total": 40}},
            "the answer has no unitesLegales array \\(header total 40\\)",
        ),
        ({}, "the answer has no header object"),
        ([], "the answer is a JSON list, not an object"),
        ({"header": {"total": 1}, "unitesLegales": "x"}, "unitesLegales is a JSON str, not an array"),
        (
            {"header": {"total": 1}, "unitesLegales": ["x"]},
            r"unitesLegales\[0\] is a JSON str, not an object",
        ),
        ({"header": {"total": "many"}, "unitesLegales": []}, "header total 'many' is not a count"),
        ({"header": {"total": 40}, "unitesLegales": []}, "the pages end after 0 of the header total 40"),
    ],
)
def test_malformed_pages_are_an_error_naming_the_request(scripted, body, reason):
    srv = scripted(lambda req: (200, body, {}))
    c, _ = client(srv.url)
    with pytest.raises(
        IntegrityError,
        match=r"answer to /siren\?q=dateDernierTraitementUniteLegale:2026-10-05 is malformed: " + reason,
    ):
        list(c.iter_kind("siren", "dateDernierTraitementUniteLegale:2026-10-05"))


@pytest.mark.parametrize(
    "kind, record, reason",
    [
        ("siren", {"siren": "123"}, "siren '123' is not a SIREN"),
        ("siren", _ul(siren="732829321"), "siren '732829321' is not a SIREN"),
        ("siren", _ul(dateDernierTraitementUniteLegale="yesterday"), "'yesterday' is not a timestamp"),
        ("siren", _ul(dateDernierTraitementUniteLegale=None), "None is not a timestamp"),
        ("siren", _ul(dateCreationUniteLegale="2026-02-30"), "'2026-02-30' is not a date"),
        ("siren", _ul(periodesUniteLegale="A"), "periodesUniteLegale is 'A', not a non-empty array"),
        ("siren", _ul(periodesUniteLegale=[]), "not a non-empty array"),
        ("siren", _ul(periodesUniteLegale=[["A"]]), r"periodesUniteLegale\[0\] is \['A'\], not an object"),
        ("siren", _ul(sigleUniteLegale={"a": 1}), "sigleUniteLegale is a JSON dict, not a value"),
        ("siret", _et(adresseEtablissement="12 RUE X"), "adresseEtablissement is '12 RUE X', not an object"),
        ("siret", _et(adresse2Etablissement=[]), r"adresse2Etablissement is \[\], not an object"),
        ("siret", _et(siret="35600000000049"), "is not a SIRET"),
        ("siret", _et(nic="00049"), "is not siren"),
        ("liens_succession", {"siretEtablissementPredecesseur": "1"}, "siretEtablissementPredecesseur '1'"),
    ],
)
def test_malformed_records_are_an_error(scripted, kind, record, reason):
    from mirror.update.insee_client import KINDS, kind_key

    srv = scripted(one_page(KINDS[kind_key(kind)][1], [record]))
    c, _ = client(srv.url)
    with pytest.raises(IntegrityError, match=r"is malformed: \w+\[0\].*" + reason):
        list(c.iter_kind(kind, "q"))


def test_valid_records_pass_la_poste_siret_included(scripted):
    from mirror.core.identifiers import is_valid_siret, luhn_ok

    la_poste = "35600000000001"
    assert is_valid_siret(la_poste) and not luhn_ok(la_poste)  # La Poste's own rule, not Luhn
    srv = scripted(one_page("etablissements", [_et(la_poste)]))
    c, _ = client(srv.url)
    assert [r["siret"] for r in c.iter_kind("siret", "q")] == [la_poste]
    srv2 = scripted(one_page("unitesLegales", [_ul()]))
    c2, _ = client(srv2.url)
    assert len(list(c2.iter_kind("siren", "q"))) == 1

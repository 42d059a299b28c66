"""The `mirror` command line. Each command is a thin wrapper over the module owning its concern.

User mistakes and upstream failures surface as `MirrorError` and are printed as one line
(`Error: ...`) with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from mirror import __version__
from mirror.core.changes import KINDS as CHANGE_KINDS
from mirror.core.config import (
    DATA_DIR_ENV,
    duckdb_memory_limit,
    duckdb_threads,
    resolve_data_dir,
    store_build_mode,
    writer_niceness,
)
from mirror.core.errors import BadInput, MirrorError, OutputClosed, WriterBusy, first_line


def data_dir_option(func):
    """Adds --data-dir (env MIRROR_DATA_DIR, default ./data); the command receives a resolved Path."""

    @click.option(
        "--data-dir",
        "data_dir",
        envvar=DATA_DIR_ENV,
        default="./data",
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=f"Mirror data directory (env {DATA_DIR_ENV}).",
    )
    @functools.wraps(func)
    def wrapper(*args, data_dir: Path, **kwargs):
        return func(*args, data_dir=resolve_data_dir(data_dir), **kwargs)

    return wrapper


DEBUG_ENV = "MIRROR_DEBUG"
_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}
_signal_received: list[str] = []  # the signal that interrupted the command, if any


def _on_signal(signum, frame):
    """SIGINT and SIGTERM both unwind the command as a KeyboardInterrupt: the writers clean up on the way
    out (their publication is crash-safe anyway), then the CLI prints one line and exits 130 / 143."""
    _signal_received.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


def _install_signal_handlers() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread (CliRunner in a thread)
            signal.signal(sig, _on_signal)


def _check_environment() -> None:
    """Bad tuning variables fail at start in one line, before any work (the load reads them again)."""
    duckdb_threads()
    duckdb_memory_limit()
    store_build_mode(None)
    writer_niceness()


def _yield_cpu() -> None:
    """A writer command lowers its priority to $MIRROR_NICE (core.config.writer_niceness) before any work:
    DuckDB's threads, started later, inherit it (on Linux the niceness is per thread), and so does a
    background store build. A caller already run at a lower priority (`nice -n 19 mirror sync`) keeps it."""
    target = writer_niceness()
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: a system without getpriority
        if os.getpriority(os.PRIO_PROCESS, 0) < target:
            os.setpriority(os.PRIO_PROCESS, 0, target)


def _os_error_line(exc: OSError) -> str:
    """`<strerror>: <path>` (the path the system refused, and the second one of a rename)."""
    reason = exc.strerror or first_line(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{reason}: {' -> '.join(paths)}" if paths else reason


def _interrupted(command: str) -> None:
    """One line on an interrupt, then exit at once: tearing down DuckDB's worker threads after an interrupt
    can abort the interpreter, and there is nothing left to clean (the writers did it while unwinding)."""
    name = _signal_received[-1] if _signal_received else "SIGINT"
    click.echo(
        f"Interrupted ({name}) during `mirror {command}`: the mirror's previous state is intact "
        "(nothing half-written is published); run it again to finish.",
        err=True,
    )
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(_SIGNAL_EXIT.get(name, 130))


def _quiet_teardown(debug: bool) -> None:
    """Once a command has failed, objects it leaves half-open (a zip on a full disk) can fail again when they
    are collected and print "Exception ignored ... Traceback": the one line already says what went wrong."""
    if not debug:
        sys.unraisablehook = lambda unraisable: None


def _output_closed(debug: bool) -> None:
    """The reader of standard output (or of the output pipe) went away, as `head -1` does: end quietly
    like a standard tool killed by SIGPIPE (no message, exit 141; core.errors.OutputClosed). Standard
    output is pointed at /dev/null so that Python's own last flush at exit cannot complain again."""
    _quiet_teardown(debug)
    if debug:
        traceback.print_exc()
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(OutputClosed.exit_code)


def _flush_stdout(debug: bool) -> None:
    """Flushes standard output inside the CLI's guard: a reader gone before the last bytes is then met
    here (a quiet end, _output_closed), not in Python's own flush at exit (a message, exit 120)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _output_closed(debug)


def _is_duckdb_error(exc: BaseException) -> bool:
    """Whether exc is a DuckDB error, without importing DuckDB for commands that never loaded it."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.Error)


def _usage_error(exc: click.UsageError) -> NoReturn:
    """A bad option or argument as one line naming the command's --help (click's own form is four lines:
    usage, hint, blank, error), exit 2. A bare group (`mirror`, `mirror watch`) still shows its help."""
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        raise exc
    message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    where = exc.ctx.command_path if exc.ctx is not None else "mirror"
    click.echo(f"Error: {message} (see `{where} --help`)", err=True)
    sys.exit(exc.exit_code)


class MirrorGroup(click.Group):
    """The last line of defence: whatever stops a command is printed as one line with an exit code.

    MirrorError: its message and code; Ctrl-C / SIGTERM: which command was interrupted, exit 130 / 143;
    OSError: the reason and the path, exit 1; a bad value from an environment variable: one line, exit 2;
    anything else: one line, the traceback only with MIRROR_DEBUG=1."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # the group's own options (`mirror --bogus`)
            _usage_error(exc)

    def invoke(self, ctx):
        _install_signal_handlers()
        pending = getattr(ctx, "_protected_args", None) or ctx.protected_args
        command = pending[0] if pending else (ctx.invoked_subcommand or "")
        debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
        try:
            _check_environment()
            result = super().invoke(ctx)
            _flush_stdout(debug)
            return result
        except click.BadParameter as exc:
            param, sub = exc.param, exc.ctx
            envvar = getattr(param, "envvar", None)
            from_env = (
                sub is not None
                and param is not None
                and param.name is not None
                and sub.get_parameter_source(param.name) == click.core.ParameterSource.ENVIRONMENT
            )
            if not from_env or not isinstance(envvar, str):
                _usage_error(exc)
            click.echo(f"Error: {envvar}: {first_line(click.ClickException(exc.format_message()))}", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            _usage_error(exc)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            _flush_stdout(debug)  # an answer printed before its exit code (`get` of a 404) is flushed too
            raise
        except (OutputClosed, BrokenPipeError):
            _output_closed(debug)
        except MirrorError as exc:
            _quiet_teardown(debug)
            if debug:
                traceback.print_exc()
            click.echo(f"Error: {first_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _interrupted(command)
        except Exception as exc:
            _quiet_teardown(debug)
            if _signal_received:  # DuckDB turns an interrupt into "Query interrupted" (RuntimeError)
                _interrupted(command)
            if debug:
                traceback.print_exc()
            if isinstance(exc, OSError):
                click.echo(f"Error: {_os_error_line(exc)}", err=True)
            elif _is_duckdb_error(exc):
                click.echo(f"Error: DuckDB: {first_line(exc)}", err=True)
            else:
                hint = "" if debug else f" (set {DEBUG_ENV}=1 for the traceback)"
                click.echo(f"Error: unexpected {type(exc).__name__}: {first_line(exc)}{hint}", err=True)
            sys.exit(1)


@click.group(cls=MirrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mirror")
def main():
    """Sirene Mirror: the French company register (Sirene) on your own machine.

    Typical use: `mirror sync` from cron keeps DATA_DIR/sirene.duckdb fresh (monthly stock from
    data.gouv.fr, daily changes from the INSEE API); query it with `mirror get`, `mirror export`,
    or any SQL through `duckdb DATA_DIR/sirene.duckdb`.
    """


# Commands are registered below, one block per concern.


# --- download ---

from mirror.core.config import DATAGOUV_URL_ENV, DEFAULT_DATAGOUV_URL  # noqa: E402


@main.command("download")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "parquet", "zip"]),
    default="auto",
    show_default=True,
    help="File format to fetch; auto prefers Parquet and falls back to zipped CSV.",
)
@click.option(
    "--datagouv-url",
    envvar=DATAGOUV_URL_ENV,
    default=DEFAULT_DATAGOUV_URL,
    show_default=True,
    help=f"Base URL of data.gouv.fr (env {DATAGOUV_URL_ENV}).",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Fetch only this file (StockUniteLegale, StockEtablissement, ... or etablissements...; "
    "geolocalisation: the geolocation file); repeat or separate with commas. Default: all six.",
)
@click.option("--month", metavar="YYYY-MM", help="Refuse unless data.gouv.fr publishes this month's stock.")
@click.option(
    "--geolocalisation",
    "geolocation",
    is_flag=True,
    help="Also fetch INSEE's geolocation file (GeolocalisationEtablissement_Sirene_pour_etudes_statistiques, "
    "~1.1 GB, its own data.gouv.fr dataset) into the stock month's folder: `mirror load` then takes the "
    "coordinates, IRIS and QPV from it.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=4,
    show_default=True,
    help="Retries after a dropped connection or a server error (backoff 1, 2, 4 s...; a transfer that "
    "progresses keeps going). 0: stop at the first failure; a later run resumes.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@data_dir_option
def download_command(fmt, datagouv_url, only, month, geolocation, retries, quiet, data_dir):
    """Download the latest monthly stock files from data.gouv.fr into DATA_DIR/downloads/<YYYY-MM>/.

    Resources are found through the data.gouv.fr dataset API. Interrupted downloads resume (HTTP
    Range); sizes and published checksums are verified and our own sha256 is stored next to each
    file (<file>.json). Files already downloaded (same last_modified, size and checksum) are skipped.
    The month is the publication month of the stock (the 2026-08 stock shows the register on 31 July).
    """
    from mirror.download.datagouv import download_stock

    paths = download_stock(
        data_dir,
        base_url=datagouv_url,
        fmt=fmt,
        files=list(only) or None,
        progress=not quiet,
        month=month,
        retries=retries,
        report=click.echo,
        geolocation=geolocation,
    )
    click.echo(f"{len(paths)} file(s) ready in {paths[0].parent if paths else data_dir / 'downloads'}")


# --- updates: daily INSEE API changes (update), the main job (sync), the local demo upstream ---


def _insee_url_option(func):
    from mirror.core.config import DEFAULT_INSEE_URL, INSEE_URL_ENV

    return click.option(
        "--insee-url",
        envvar=INSEE_URL_ENV,
        default=DEFAULT_INSEE_URL,
        show_default=True,
        help=f"Base URL of the INSEE API Sirene 3.11 (env {INSEE_URL_ENV}).",
    )(func)


def _max_wait_option(func):
    return click.option(
        "--max-wait",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="Most seconds spent retrying an INSEE API (and, for sync, data.gouv.fr) that fails or cannot be "
        "reached, over the whole run (each retry is printed with its wait; default: env MIRROR_RETRY_BUDGET, "
        "else 600).",
    )(func)


def _rate_option(func):
    return click.option(
        "--rate",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        help="Max INSEE requests per minute (the quota of a key is 30/min, shared by all its users).",
    )(func)


@main.command("update")
@click.option(
    "--since", metavar="YYYY-MM-DD", help="First day to fetch (default: the day before the watermark)."
)
@click.option(
    "--until", metavar="YYYY-MM-DD", help="Last day to fetch (default: the last day INSEE published)."
)
@click.option("--dry-run", is_flag=True, help="Fetch and count the changes, write nothing.")
@_insee_url_option
@_rate_option
@_max_wait_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (retries are still printed).")
@data_dir_option
def update_command(since, until, dry_run, insee_url, rate, max_wait, quiet, data_dir):
    """Apply the daily changes of the INSEE API Sirene on top of the current snapshot.

    Needs INSEE_API_KEY (a free key from portail-api.insee.fr). Days are fetched one at a time, from
    the day before the last one applied through the last day INSEE has finished publishing (per its
    /informations service), and stored as DATA_DIR/deltas/<day>/; the catalog views then show the
    latest version of every unit. Re-applying a day replaces it. Prints, per day, the new, changed and
    closed unités légales and établissements (changed: processed again by INSEE since the mirror's
    version, so a day applied again counts 0), and the requests made.
    """
    _yield_cpu()
    from mirror.update.run import parse_day, run_update

    report = run_update(
        data_dir,
        since=parse_day(since, "--since"),
        until=parse_day(until, "--until"),
        dry_run=dry_run,
        insee_url=insee_url,
        rate=rate,
        progress=False if quiet else None,
        max_wait=max_wait,
    )
    click.echo(report.format())


@main.command("sync")
@click.option(
    "--datagouv-url",
    envvar="MIRROR_DATAGOUV_URL",
    default="https://www.data.gouv.fr",
    show_default=True,
    help="Base URL of data.gouv.fr (env MIRROR_DATAGOUV_URL).",
)
@_insee_url_option
@_rate_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "parquet", "zip"]),
    default="auto",
    show_default=True,
    help="Stock file format to download (auto prefers Parquet).",
)
@click.option(
    "--geolocalisation",
    "geolocation",
    is_flag=True,
    envvar="MIRROR_GEOLOCALISATION",
    help="Load each new monthly stock with INSEE's geolocation file (as `download --geolocalisation`: "
    "coordinates, qualiteXY, IRIS, QPV); env MIRROR_GEOLOCALISATION=1. Fetched with a new stock only.",
)
@_max_wait_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (retries are still printed).")
@data_dir_option
def sync_command(datagouv_url, insee_url, rate, fmt, geolocation, max_wait, quiet, data_dir):
    """Bring the mirror up to date: the main job, safe to run from cron at any hour.

    If data.gouv.fr publishes a newer monthly stock than the mirror's, download and load it; then apply
    every day of INSEE API changes published since (like `mirror update`). Needs INSEE_API_KEY. Only
    one writer runs at a time (DATA_DIR/.lock); readers are never blocked.

    \b
    Exit codes:
      0  up to date
      4  partly done: the daily changes were applied, but data.gouv.fr could not be checked or its
         newer stock was not loaded (the next run tries again)
      3  INSEE ran a mass update: nothing fetched, the mirror waits for the next monthly stock
      1  failed (one-line reason; the mirror is as it was), 2 bad input, 130/143 interrupted

    \b
    Crontab example (INSEE publishes the day's changes between 07:00 and 08:00 Paris time):
      30 8 * * *  cd /srv/sirene && .venv/bin/mirror sync --quiet >> sync.log 2>&1
    """
    _yield_cpu()
    from mirror.pipeline import run_sync

    try:
        report = run_sync(
            data_dir,
            datagouv_url=datagouv_url,
            insee_url=insee_url,
            rate=rate,
            fmt=fmt,
            progress=False if quiet else None,
            max_wait=max_wait,
            geolocation=geolocation,
        )
    except MirrorError as exc:
        # A newer stock that failed: the daily updates were still applied; show them, then the failure.
        if getattr(exc, "report", None) is not None:
            click.echo(exc.report.format())
        raise
    click.echo(report.format())


@main.command("demo-upstream")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 = any free port."
)
@click.option("--scale", type=click.IntRange(min=10), default=2000, show_default=True, help="Unités légales.")
@click.option("--month", default="2026-10", show_default=True, metavar="YYYY-MM", help="Stock month served.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--today",
    metavar="YYYY-MM-DD",
    help="The INSEE-like API's today: days before it are published (default: the 6th of the month).",
)
@click.option(
    "--api-key", default="demo-key", show_default=True, help="The only key the INSEE-like API accepts."
)
@click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the generated upstream files (default: DATA_DIR/upstream).",
)
@data_dir_option
def demo_upstream_command(port, scale, month, seed, today, api_key, data, data_dir):
    """Serve SYNTHETIC Sirene data on 127.0.0.1: a data.gouv.fr-like dataset and an INSEE-like API.

    Generates (once, cached in --data) the monthly stock of --month and serves it behind the data.gouv.fr
    dataset API at http://127.0.0.1:PORT, and a daily change stream behind an INSEE API Sirene 3.11
    look-alike at http://127.0.0.1:PORT/api-sirene/3.11 (key required). Point `mirror sync` at it with
    --datagouv-url and --insee-url. Stops with Ctrl-C.
    """
    from mirror.synthetic.upstream.server import run_forever
    from mirror.update.run import parse_day

    run_forever(
        data or data_dir / "upstream",
        port=port,
        scale=scale,
        month=month,
        seed=seed,
        today=parse_day(today, "--today"),
        api_key=api_key,
        echo=click.echo,
    )


# --- export and batch: filtered bulk exports, enrichment of identifier lists ---


def _split_columns(values) -> list[str] | None:
    """None when --columns is not given; else the names (possibly none: `--columns ,` is then refused)."""
    if not values:
        return None
    return [c.strip() for v in values for c in v.split(",") if c.strip()]


def _output_options(func):
    """Options shared by `export` and `batch`: output file, format and columns."""
    from mirror.export.formats import EXTENSIONS, FORMATS

    decorators = [
        click.option(
            "-o",
            "--output",
            "output",
            type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
            help=f"Output file; the format follows its extension ({' '.join(EXTENSIONS)}). "
            "`-o -`: standard output (CSV unless --format; the summary goes to standard error).",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(list(FORMATS)),
            help="Output format, when the extension does not tell (a known extension must agree). "
            "XML: <etablissements> (or <unitesLegales>) holding one <etablissement> (<uniteLegale>) per "
            "row, one child element per column, named after it; NULL values have no element.",
        ),
        click.option(
            "--columns",
            "columns",
            multiple=True,
            metavar="COL,COL",
            help="Columns to write, in order (repeat or comma-separate; see `mirror export --list-columns`). "
            "Default: every column of the level's view.",
        ),
        click.option(
            "--with-libelles",
            is_flag=True,
            help="Add, right after each selected code column (activité, NAF 2025, tranche, catégorie "
            "juridique, commune, département, région, EPCI), the libellé of its code.",
        ),
        click.option(
            "--delimiter", default=None, help="CSV delimiter (one character; \\t for tab) [default: ,]."
        ),
        click.option(
            "--split-sheets",
            is_flag=True,
            help="Excel: spread more than 1,048,575 rows over several sheets instead of refusing.",
        ),
        click.option(
            "--include-non-diffusible",
            is_flag=True,
            help="Read the raw views: personal data of partially diffusible units UNMASKED "
            "(legal restriction: no prospection, no rediffusion).",
        ),
        click.option(
            "--level",
            type=click.Choice(["etablissement", "unite-legale"]),
            default=None,
            help="One row per établissement (SIRET) or per unité légale (SIREN) "
            "[export default: etablissement; batch default: unite-legale].",
        ),
        click.option(
            "--document",
            type=click.Choice(["v2", "v3", "v4"]),
            default="v3",
            show_default=True,
            help="JSON Lines: which API Entreprise document to write.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


def _print_columns(con, level, include_non_diffusible):
    from mirror.export.exporter import list_columns

    for name, origin in list_columns(con, level, include_non_diffusible):
        click.echo(f"{name}\t{origin}")


def _delimiter(value: str) -> str:
    return "\t" if value in ("\\t", "tab", "TAB") else value


@main.command("export")
@_output_options
@click.option(
    "--sort",
    "sort",
    multiple=True,
    metavar="COL,COL",
    help="Row order: these columns (-COL: descending; NULLs last), then the identifier. "
    "Default: by identifier (siret / siren), so the same command gives the same file.",
)
@click.option("--count", "count_only", is_flag=True, help="Print the number of matching rows; write nothing.")
@click.option("--list-columns", is_flag=True, help="Print the columns available at this level and exit.")
@click.option(
    "--naf",
    multiple=True,
    metavar="CODE",
    help="NAF rév. 2: code (62.01Z), prefix (62, 62.0) or section (J).",
)
@click.option("--naf25", multiple=True, metavar="CODE", help="NAF 2025: code (62.10Y), prefix or section.")
@click.option(
    "--tranche",
    "tranches",
    multiple=True,
    metavar="CODE",
    help="Tranche d'effectif code(s) (NN, 00, 01 ... 53).",
)
@click.option(
    "--effectif-min", type=click.IntRange(min=0), help="Headcount at least N (bands overlapping [min, max])."
)
@click.option("--effectif-max", type=click.IntRange(min=0), help="Headcount at most N.")
@click.option(
    "--categorie-juridique",
    "cjs",
    multiple=True,
    metavar="CODE",
    help="Catégorie juridique: 5710, or a prefix 57 / 5*.",
)
@click.option(
    "--categorie-entreprise", "cats", multiple=True, metavar="PME|ETI|GE", help="Catégorie d'entreprise."
)
@click.option("--all", "etat_all", is_flag=True, help="Active and closed (default: active only).")
@click.option(
    "--closed", "etat_closed", is_flag=True, help="Closed only (établissements F / unités légales C)."
)
@click.option("--siege-only", is_flag=True, help="Sièges only (level etablissement).")
@click.option(
    "--commune",
    "communes",
    multiple=True,
    metavar="CODE",
    help="Code commune INSEE (2A004); 75056, 69123, 13055 include the arrondissements of Paris, Lyon, Marseille.",
)
@click.option("--code-postal", "codes_postaux", multiple=True, metavar="CP", help="Code postal.")
@click.option(
    "--departement",
    "departements",
    multiple=True,
    metavar="CODE",
    help="Département (75, 2A, 974; 99: abroad).",
)
@click.option("--region", "regions", multiple=True, metavar="CODE", help="Région code (11 = Île-de-France).")
@click.option("--epci", "epcis", multiple=True, metavar="SIREN", help="EPCI (its SIREN).")
@click.option(
    "--iris",
    multiple=True,
    metavar="CODE",
    help="IRIS (9 characters: commune + 4 digits, 751010101); needs the geolocation file in the load.",
)
@click.option(
    "--qpv",
    "qpvs",
    multiple=True,
    metavar="CODE|any",
    help="Quartier prioritaire de la politique de la ville (2024 code, e.g. QN07501M), or `any`: in any "
    "QPV; needs the geolocation file in the load.",
)
@click.option("--near", metavar="LAT,LON", help="Centre of a radius search (WGS84 degrees).")
@click.option("--near-siret", metavar="SIRET", help="Centre of a radius search: this établissement.")
@click.option("--radius-km", type=float, help="Radius of --near / --near-siret, in km.")
@click.option("--created-from", type=click.DateTime(["%Y-%m-%d"]), help="Created on or after (YYYY-MM-DD).")
@click.option("--created-to", type=click.DateTime(["%Y-%m-%d"]), help="Created on or before.")
@click.option("--updated-from", type=click.DateTime(["%Y-%m-%d"]), help="Last updated by INSEE on or after.")
@click.option("--updated-to", type=click.DateTime(["%Y-%m-%d"]), help="Last updated on or before.")
@click.option(
    "--siren",
    "sirens",
    multiple=True,
    metavar="SIREN",
    help="These units only (e.g. all établissements of a company).",
)
@click.option("--ess", is_flag=True, help="Économie sociale et solidaire only.")
@click.option("--societe-mission", is_flag=True, help="Sociétés à mission only.")
@click.option(
    "--name",
    metavar="TEXT",
    help="Words found in dénomination, sigle, noms, dénominations usuelles or "
    "enseignes (case and accents ignored).",
)
@click.option(
    "--where",
    metavar="SQL",
    help='Extra SQL condition on the columns (e.g. "year(dateCreationEtablissement) '
    '>= 2020"); only columns, literals, operators and common functions.',
)
@data_dir_option
def export_command(
    output,
    fmt,
    columns,
    with_libelles,
    delimiter,
    split_sheets,
    include_non_diffusible,
    level,
    document,
    quiet,
    sort,
    count_only,
    list_columns,
    naf,
    naf25,
    tranches,
    effectif_min,
    effectif_max,
    cjs,
    cats,
    etat_all,
    etat_closed,
    siege_only,
    communes,
    codes_postaux,
    departements,
    regions,
    epcis,
    iris,
    qpvs,
    near,
    near_siret,
    radius_km,
    created_from,
    created_to,
    updated_from,
    updated_to,
    sirens,
    ess,
    societe_mission,
    name,
    where,
    data_dir,
):
    """Export the units matching combinable filters to CSV, TSV, Parquet, JSON Lines, Excel, GeoJSON or XML.

    Default: active établissements, diffusible data only (personal data of partially diffusible units
    masked). Filters combine with AND; values of one repeated filter combine with OR. At level
    unite-legale the address filters apply to the siège. Rows are ordered by identifier (or --sort).
    The file is written as OUTPUT.part and renamed when complete; `-o -` writes to standard output
    once the export is complete. Examples:

    \b
      mirror export --naf 56.10A --departement 75 --tranche 11 -o restos.csv
      mirror export --level unite-legale --categorie-juridique 57 --created-from 2025-01-01 -o sas.parquet
      mirror export --near 48.8566,2.3522 --radius-km 2 --naf J -o tech.geojson
      mirror export --name "boulangerie" --departement 69 --count
      mirror export --siren 356000000 --all --columns siret,codePostalEtablissement -o - | head
      mirror export --qpv any --departement 93 -o qpv-93.csv   (with the geolocation file loaded)
    """
    from mirror.catalog.build import connect
    from mirror.export.exporter import NON_DIFFUSIBLE_WARNING, export
    from mirror.export.filters import Filters, parse_near

    level = level or "etablissement"
    if etat_all and etat_closed:
        raise BadInput("use either --all or --closed")
    con = connect(data_dir, read_only=True)
    if list_columns:
        _print_columns(con, level, include_non_diffusible)
        return
    filters = Filters(
        naf=list(naf),
        naf25=list(naf25),
        tranches=list(tranches),
        effectif_min=effectif_min,
        effectif_max=effectif_max,
        categories_juridiques=list(cjs),
        categories_entreprise=list(cats),
        etat="all" if etat_all else "closed" if etat_closed else "active",
        siege_only=siege_only,
        communes=list(communes),
        codes_postaux=list(codes_postaux),
        departements=list(departements),
        regions=list(regions),
        epcis=list(epcis),
        iris=list(iris),
        qpvs=list(qpvs),
        near=parse_near(near) if near is not None else None,
        near_siret=near_siret,
        radius_km=radius_km,
        created_from=created_from.date() if created_from else None,
        created_to=created_to.date() if created_to else None,
        updated_from=updated_from.date() if updated_from else None,
        updated_to=updated_to.date() if updated_to else None,
        sirens=list(sirens),
        ess=ess,
        societe_mission=societe_mission,
        name=name,
        where=where,
    )
    if include_non_diffusible and not count_only:
        click.echo(NON_DIFFUSIBLE_WARNING, err=True)
    summary = export(
        con,
        output,
        level=level,
        filters=filters,
        columns=_split_columns(columns),
        with_libelles=with_libelles,
        fmt=fmt,
        include_non_diffusible=include_non_diffusible,
        count_only=count_only,
        delimiter=_delimiter(delimiter) if delimiter is not None else None,
        split_sheets=split_sheets,
        document=document,
        progress=not quiet,
        sort=_split_columns(sort),
    )
    if count_only:
        click.echo(summary["rows"])
        return
    message = (
        f"{summary['rows']:,} rows written to {summary['path']} ({summary['format']}, {summary['seconds']} s)"
    )
    if summary["skipped_without_coordinates"]:
        message += f"; {summary['skipped_without_coordinates']:,} rows without coordinates skipped"
    for status, n in summary.get("skipped_documents", {}).items():
        message += (
            f"; {n:,} documents not written (HTTP {status}{', non diffusible' if status == 451 else ''})"
        )
    click.echo(message, err=True)


@main.command("batch")
@click.argument("input_file", type=click.Path(dir_okay=False, path_type=Path))
@_output_options
@click.option(
    "--column",
    metavar="NAME",
    help="INPUT is a CSV file (, ; tab or |) and NAME its identifier column. Without it, a CSV's header "
    "line and its SIREN / SIRET column are detected (or the command says what to pass).",
)
@click.option(
    "--keep-columns",
    is_flag=True,
    help="Carry the input CSV's own columns through, first (instead of `input`); JSON Lines: an `input` object.",
)
@click.option(
    "--changed-since",
    type=click.DateTime(["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Add each row's changes since that day (those of `mirror changes`): changes_count, changes_kinds, "
    "changes_last_day and changes (a JSON array); JSON Lines: a `changes` array.",
)
@data_dir_option
def batch_command(
    input_file,
    output,
    fmt,
    columns,
    with_libelles,
    delimiter,
    split_sheets,
    include_non_diffusible,
    level,
    document,
    quiet,
    column,
    keep_columns,
    changed_since,
    data_dir,
):
    """Enrich a list of SIRENs, SIRETs and/or VAT numbers (FR + key + SIREN, key checked; one per line, or
    a CSV column) with the mirror's data.

    One output row per input row (a blank line too), in input order (duplicates kept), starting with the
    original `input` and a `status`: ok, non_diffusible (partially diffusible: personal data masked),
    not_found, invalid (length or Luhn check), or doublon (SIREN closed as a doublon: `mirror get` answers
    301). Level unite-legale (default): a SIRET gives its unit. Level etablissement: a SIREN gives its
    siège; an établissement of a partially diffusible unit is non_diffusible. JSON Lines (.jsonl): one API
    Entreprise document per input row (SIREN: the unit's, SIRET: the établissement's), or its error body
    (422, 404, 451, 301), with the same statuses.

    \b
      mirror batch clients.txt -o clients-enrichis.csv
      mirror batch portefeuille.csv --column siret --level etablissement --with-libelles -o out.xlsx
      mirror batch clients.csv --keep-columns --changed-since 2026-10-01 -o clients-suivi.csv
    """
    from mirror.catalog.build import connect
    from mirror.export.batch import batch
    from mirror.export.exporter import NON_DIFFUSIBLE_WARNING

    if output is None:
        raise BadInput("give an output file with -o FILE")
    con = connect(data_dir, read_only=True)
    if include_non_diffusible:
        click.echo(NON_DIFFUSIBLE_WARNING, err=True)
    summary = batch(
        con,
        input_file,
        output,
        level=level or "unite-legale",
        column=column,
        columns=_split_columns(columns),
        with_libelles=with_libelles,
        fmt=fmt,
        include_non_diffusible=include_non_diffusible,
        delimiter=_delimiter(delimiter) if delimiter is not None else None,
        split_sheets=split_sheets,
        document=document,
        progress=not quiet,
        keep_columns=keep_columns,
        changed_since=changed_since.date() if changed_since else None,
        data_dir=data_dir,
    )
    read = summary.get("input") or {}
    if read.get("detected"):
        click.echo(
            f"Read the column {read['column']!r} of {input_file.name} (its first line is a header); "
            "pass --column NAME to read another.",
            err=True,
        )
    statuses = ", ".join(f"{k} {v:,}" for k, v in summary["statuses"].items())
    click.echo(f"{summary['rows']:,} rows written to {summary['path']} ({statuses})", err=True)


# --- load, status, catalog (monthly snapshot) ---


@main.command("load")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--month",
    metavar="YYYY-MM",
    help="Stock month (default: from the file/folder names, else the month "
    "after the latest dateDernierTraitementEtablissement).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Publish even if a check fails (< 98 % of the previous snapshot's rows, "
    "stale data, month older than the current one).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Snapshots (months) to keep, the new one included.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@data_dir_option
def load_command(paths, month, force, keep, quiet, data_dir):
    """Build the snapshot of a monthly stock and make it current.

    PATH: the stock files (StockUniteLegale_utf8.zip|.parquet, StockEtablissement_utf8..., and the optional
    Historique, LiensSuccession and Doublons files) or a folder holding them. Any INSEE layout (3.9, 3.11,
    current) is accepted; unknown columns are kept and reported. The previous snapshot stays queryable until
    the new one is complete and validated; DATA_DIR/sirene.duckdb then switches to it in one step.

    Optional seventh input: INSEE's geolocation file
    (GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.zip|.parquet|.csv). When given, the
    établissements' latitude/longitude come from it where it has them (else from the stock's Lambert
    columns) and they gain qualiteXY (geocoding quality), iris and qpv (filters --iris, --qpv of export).
    """
    _yield_cpu()
    from mirror.load.stock import load_snapshot

    s = load_snapshot(data_dir, list(paths), month=month, force=force, progress=not quiet, keep=keep)
    for w in s["warnings"]:
        click.echo(f"warning: {w}", err=True)
    rows = ", ".join(f"{k} {v:,}" for k, v in s["rows"].items())
    click.echo(f"snapshot {s['month']} ({s['month_source']}) published in {s['snapshot_dir']}")
    click.echo(f"{rows}; {s['duration_s']} s ({s['rows_per_s'] or 0:,} rows/s)")
    if geo := s.get("geolocalisation"):
        click.echo(
            f"geolocalisation: {geo['rows']:,} rows, {geo['matched']:,} établissements geolocated "
            f"({geo['matched'] / max(s['rows']['etablissements'], 1):.1%})"
        )
    if s["removed"]:
        click.echo(f"removed old snapshots: {', '.join(s['removed'])}")
    if s.get("lookup_store"):
        click.echo(s["lookup_store"])


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@data_dir_option
def status_command(as_json, data_dir):
    """Show the snapshot month, rows per table, last update, data freshness, disk use and staleness warnings."""
    import json as _json

    from mirror.serve.status import format_status, status

    s = status(data_dir)
    click.echo(_json.dumps(s, indent=2, default=str) if as_json else format_status(s))


@main.command("catalog")
@data_dir_option
def catalog_command(data_dir):
    """Re-create DATA_DIR/sirene.duckdb (views + reference tables) from the current snapshot."""
    from mirror.catalog.build import prepare_writer, rebuild
    from mirror.core import datadir as snapshot
    from mirror.deltas.store import compact_for

    with snapshot.writer_lock(data_dir, "mirror catalog"):
        for note in prepare_writer(data_dir):
            click.echo(note, err=True)
        path = rebuild(data_dir, compact_for(data_dir))
    click.echo(f"catalog rebuilt: {path}")


@main.command("views")
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "spark", "trino", "postgres", "bigquery"]),
    default="duckdb",
    show_default=True,
    help="SQL dialect to print the catalog in (transpiled with sqlglot from the sql/ files).",
)
@data_dir_option
def views_command(dialect, data_dir):
    """Print the mirror's catalog (base views, diffusion views, document views, export views) as SQL for
    another engine, over the current state published in DATA_DIR/current.json (snapshot + applied delta
    days). DuckDB and Spark scripts define the Parquet relations they read and run as they are (e.g.
    `mirror views --dialect spark > catalog.sql`, then `spark-sql -f catalog.sql`); for Trino,
    PostgreSQL and BigQuery the relations are listed in a comment, to create as external tables first."""
    from mirror.engines.dialects import catalog_script

    click.echo(catalog_script(data_dir, dialect), nl=False)


# --- get: API Entreprise documents (v2, v3, v4) ---


@main.command("get")
@click.argument("identifier")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["v2", "v3", "v4"]),
    default="v3",
    show_default=True,
    help="API Entreprise version: v2 (entreprises / etablissements), v3 or v4 (NAF 2025) INSEE documents.",
)
@click.option(
    "--diffusibles",
    is_flag=True,
    help="v3/v4 /diffusibles/ variant: protected fields of P units as [ND] (v2 has none: --non-diffusables).",
)
@click.option(
    "--non-diffusables",
    is_flag=True,
    help="Answer for partially diffusible (P) units too instead of HTTP 451 (v2 non_diffusables=true). "
    "Their personal data stays [ND] as in INSEE's open files.",
)
@click.option(
    "--siege",
    is_flag=True,
    help="For a SIREN: the document of its siège (v3/v4 .../siege_social); refused for a SIRET.",
)
@click.option(
    "--follow-doublons",
    is_flag=True,
    help="For a SIREN closed as a doublon: the replacing unit's document (meta.redirect_from_siren) instead of 301.",
)
@click.option(
    "--date",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="The document as it stood that day: historised variables (état, name, activity, siège, ...) from "
    "the period valid then, the others (address, effectif, ...) current; 404 if created later.",
)
@click.option(
    "--successions",
    is_flag=True,
    help="For a SIRET: its predecessors and successors (liens de succession, with their dates, transfert de "
    "siège and continuité économique), the v3/v4 .../etablissements/{siret}/successions document.",
)
@click.option("--compact", is_flag=True, help="One-line JSON instead of indented.")
@data_dir_option
def get_command(
    identifier,
    fmt,
    diffusibles,
    non_diffusables,
    siege,
    follow_doublons,
    as_of,
    successions,
    compact,
    data_dir,
):
    """Print the API Entreprise document of a SIREN (entreprise / unité légale) or a SIRET (établissement).

    The JSON is written on stdout, also for errors, which use API Entreprise's error model. Exit codes:
    0 found; 2 invalid identifier (HTTP 422); 3 unknown (404); 4 partially diffusible without
    --non-diffusables or --diffusibles (451); 5 SIREN closed as a doublon (301, the body names the
    replacing SIREN); 1 no mirror in DATA_DIR. Examples:

    \b
      mirror get 356000000 --format v2
      mirror get 356000000 --format v4 --diffusibles
      mirror get 356000000 --siege
      mirror get 356000000 --date 2020-01-01
      mirror get SIRET --successions
    """
    import json

    from mirror.core.config import catalog_path
    from mirror.serve.documents import (
        EXIT_CODES,
        get_document,
        get_successions,
        identifier_kind,
        normalize_identifier,
    )

    ident = normalize_identifier(identifier)
    if siege and identifier_kind(ident) == "siret":  # a usage error, not the API's 422 about the number
        raise BadInput(
            f"--siege takes a SIREN (it answers the siège of a unit) and {ident} is a SIRET: drop --siege, "
            f"or ask for {ident[:9]} --siege"
        )
    if diffusibles and fmt == "v2":
        raise BadInput(
            "--diffusibles is the v3/v4 /diffusibles/ variant; v2 has none: use --non-diffusables "
            "(v2's non_diffusables=true, INSEE's [ND] masks kept) or --format v3/v4 --diffusibles"
        )
    if not catalog_path(data_dir).is_file():
        raise MirrorError(f"no mirror in {data_dir}: run `mirror load` or `mirror sync` first")
    if successions:
        if fmt == "v2" or siege or as_of or follow_doublons:
            raise BadInput(
                "--successions is a v3/v4 document of its own: drop --format v2, --siege, --date and "
                "--follow-doublons"
            )
        status, document = get_successions(data_dir, identifier, fmt)
        click.echo(json.dumps(document, ensure_ascii=False, indent=None if compact else 2))
        if status != 200:
            sys.exit(EXIT_CODES.get(status, 1))
        return
    status, document = get_document(
        data_dir,
        identifier,
        fmt=fmt,
        diffusibles=diffusibles,
        non_diffusables=non_diffusables,
        siege=siege,
        follow_doublons=follow_doublons,
        as_of=as_of.date() if as_of else None,
    )
    click.echo(json.dumps(document, ensure_ascii=False, indent=None if compact else 2))
    if status == 451:
        options = "--non-diffusables" if fmt == "v2" else "--diffusibles (or --non-diffusables)"
        click.echo(
            "HTTP 451: partially diffusible (statut P of the unit or of the établissement or its unit); "
            f"{options} answers with the protected fields as [ND] (README, Diffusion rules)",
            err=True,
        )
    if status != 200:
        sys.exit(EXIT_CODES.get(status, 1))


# --- search and the lookup store ---


@main.command("search")
@click.argument("text")
@click.option("--limit", default=20, show_default=True, type=int, help="Results per page (1-100).")
@click.option("--offset", default=0, show_default=True, type=int, help="Results to skip (paging).")
@click.option("--departement", multiple=True, metavar="CODE",
              help="Département of the siège or of an open établissement (75, 2A, 971); repeatable.")  # fmt: skip
@click.option("--code-postal", "code_postal", multiple=True, metavar="CODE", help="Code postal; repeatable.")
@click.option("--naf", multiple=True, metavar="CODE", help="APE of the unit (10.71C or 1071C); repeatable.")
@click.option("--etat", type=click.Choice(["A", "C", "all"]), default="all", show_default=True,
              help="A: active units, C: closed ones, all: both (active ranked first).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")  # fmt: skip
@data_dir_option
def search_command(text, limit, offset, departement, code_postal, naf, etat, fmt, data_dir):
    """Find companies by name, sigle, enseigne or the name of a natural person, ranked as
    recherche-entreprises ranks them (relevance, then active before closed, then size).

    Accents, case, apostrophes (' and ’), hyphens and elisions (l', d') do not matter; the last word is
    matched as a prefix (autocomplete); a one-letter typo in a word of 5 letters or more is forgiven; a
    SIREN or SIRET typed in the box (spaces allowed) answers that unit. Partially diffusible natural
    persons are not found by name (only by identifier), as on recherche-entreprises. Examples:

    \b
      mirror search "boulangerie" --departement 75
      mirror search "l'ouest" --etat A --format json
      mirror search "356 000 000"
    """
    from mirror.lookup.search import render, search
    from mirror.lookup.store import open_store

    store = open_store(data_dir)
    if store is not None and not store.begin():
        click.echo("warning: the search index is not current (the lookup store is being rebuilt or "
                   "lags behind the mirror): run `mirror store`", err=True)  # fmt: skip
    elif store is not None:
        store.end()
    result = search(
        data_dir,
        text,
        limit=limit,
        offset=offset,
        departement=list(departement) or None,
        code_postal=list(code_postal) or None,
        naf=list(naf) or None,
        etat=etat,
    )
    text = render(result, fmt)
    click.echo(text, nl=not text.endswith("\n"))


@main.command("changes")
@click.option("--since", required=True, type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="First day of changes (a day INSEE published), inclusive.")  # fmt: skip
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Last day, inclusive (default: the last applied day).")  # fmt: skip
@click.option("--siren", "sirens", multiple=True, metavar="ID",
              help="Only this SIREN (the unit and its établissements) or SIRET; repeatable.")  # fmt: skip
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Only the SIRENs / SIRETs of this file (one per line).")  # fmt: skip
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help=f"Only these kinds: {', '.join(CHANGE_KINDS)}; repeatable.")  # fmt: skip
@click.option("--fields", "fields", multiple=True, metavar="NAME",
              help="Only these variables (stock file column names, e.g. activitePrincipaleUniteLegale); repeatable.")  # fmt: skip
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE (.csv, .jsonl or .parquet); default (or -o -): CSV on standard output.")  # fmt: skip
@data_dir_option
def changes_command(since, until, sirens, ids_file, kinds, fields, out, data_dir):
    """List what the applied daily changes, and the monthly stocks loaded, did: one row per changed variable.

    Columns: identifier, level (unite_legale / etablissement), kind, field, old_value, new_value,
    effective_date (the period's dateDebut for variables INSEE historises; the creation date of a
    creation), processing_date (dateDernierTraitement), source (daily, or stock: what a new monthly stock
    changed that the days did not report, units that left the register and doublons included; day = the
    stock's coverage), day. A variable masked ([ND]) in the latest version is [ND] in every change. Examples:

    \b
      mirror changes --since 2026-10-01 -o changes.csv
      mirror changes --since 2026-10-01 --kind cessation --kind fermeture
      mirror changes --since 2026-10-01 --siren 356000000 -o 356000000.jsonl
    """
    from mirror.core.config import catalog_path
    from mirror.serve import changes

    if not catalog_path(data_dir).is_file():
        raise MirrorError(f"no mirror in {data_dir}: run `mirror load` or `mirror sync` first")
    from mirror.core.identifiers import is_valid_siren, is_valid_siret
    from mirror.watch.lists import read_ids

    ids = [s.replace(" ", "") for s in sirens]
    bad = next((i for i in ids if not (is_valid_siren(i) or is_valid_siret(i))), None)
    if bad is not None:
        raise BadInput(
            f"--siren {bad!r} is not a SIREN (9 digits) or a SIRET (14 digits) with a valid check digit"
        )
    if ids_file is not None:
        ids += read_ids(ids_file)  # one per line, checked like a watchlist's file
    to_stdout = out is None or str(out) == "-"
    fmt = "csv" if to_stdout else changes.format_of(out)
    table = changes.changes(
        data_dir,
        since.date(),
        until.date() if until else None,
        ids=ids if (sirens or ids_file is not None) else None,
        kinds=list(kinds) or None,
        fields=list(fields) or None,
    )
    _write_changes(table, None if to_stdout else out, fmt, data_dir)
    if not to_stdout:
        click.echo(f"{table.num_rows:,} changes written to {out}", err=True)


def _write_changes(table, out: Path | None, fmt: str, data_dir: Path) -> None:
    """The changes to `out` (None: standard output), through a private temporary file renamed or copied
    into place (mirror.export.output): an interrupted write leaves nothing half-written."""
    from mirror.export import output
    from mirror.serve import changes

    plan = output.plan_output(out if out is not None else Path("/dev/stdout"), data_dir)
    output.prepare(plan)
    try:
        changes.write(table, plan.part, fmt)
        output.commit(plan)
    finally:
        output.discard(plan)


@main.group("watch")
def watch_group():
    """Watchlists: the changes of chosen SIRENs / SIRETs, collected after every `mirror sync`.

    Each sync appends the new days' changes of each list (the rows of `mirror changes`) to
    DATA_DIR/alerts/NAME/<day>.jsonl and, with --webhook, POSTs them as JSON ({watchlist, day, changes};
    header Idempotency-Key: NAME/<day>), retrying with backoff; a failed delivery never fails the sync
    and is retried at the next one. Examples:

    \b
      mirror watch add clients clients.csv --column siren
      mirror watch add suppliers sirets.txt --webhook https://hooks.example.org/sirene
      mirror watch show clients --since 2026-11-01
    """


@watch_group.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--column", help="The identifier column of a CSV FILE (default: one identifier per line).")
@click.option("--webhook", metavar="URL", help="POST each new day's changes to this http(s) URL.")
@data_dir_option
def watch_add_command(name, file, column, webhook, data_dir):
    """Create (or replace) watchlist NAME from FILE: it reports the days applied from now on."""
    from mirror.core.datadir import writer_lock
    from mirror.watch import lists

    ids = lists.read_ids(file, column)
    with writer_lock(data_dir, "mirror watch add"):
        entry = lists.add(data_dir, name, ids, webhook)
    click.echo(
        f"Watchlist {name}: {len(entry['ids']):,} identifiers, changes after {entry['since'] or 'now'}."
    )


@watch_group.command("list")
@data_dir_option
def watch_list_command(data_dir):
    """The watchlists: name, identifiers, last day collected, webhook deliveries pending."""
    from mirror.watch import lists

    entries = lists.all_lists(data_dir)
    if not entries:
        click.echo("No watchlist (add one with `mirror watch add NAME FILE`).")
    for e in entries:
        folder = lists.alerts_dir(data_dir, e["name"])
        days = sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []
        pending = len(set(days) - set(e.get("delivered") or [])) if e.get("webhook") else 0
        hook = "webhook" if e.get("webhook") else "no webhook"  # the URL may hold a secret: never printed
        click.echo(
            f"{e['name']}\t{len(e['ids']):,} ids\tcollected through {e.get('done_through') or '-'}\t"
            f"{len(days)} alert file(s)\t{hook}{f', {pending} pending' if pending else ''}"
        )


@watch_group.command("rm")
@click.argument("name")
@data_dir_option
def watch_rm_command(name, data_dir):
    """Remove watchlist NAME (its alerts files are kept)."""
    from mirror.core.datadir import writer_lock
    from mirror.watch import lists

    with writer_lock(data_dir, "mirror watch rm"):
        lists.remove(data_dir, name)
    click.echo(f"Watchlist {name} removed (its alerts stay in {lists.alerts_dir(data_dir, name)}).")


@watch_group.command("show")
@click.argument("name")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="From this day (default: the day the list was created).")  # fmt: skip
@data_dir_option
def watch_show_command(name, since, data_dir):
    """Print the changes of watchlist NAME since a day, as CSV (the columns of `mirror changes`)."""
    from datetime import date, timedelta

    from mirror.serve import changes
    from mirror.watch import lists

    entry = lists.get(data_dir, name)
    if since is not None:
        start = since.date()
    else:  # the list reports the days applied after it was created
        start = date.fromisoformat(entry["since"]) + timedelta(days=1) if entry.get("since") else date.min
    _write_changes(changes.changes(data_dir, start, ids=entry["ids"]), None, "csv", data_dir)


@main.command("store")
@click.option("--rebuild", is_flag=True, help="Build the whole store again even if it is current.")
@data_dir_option
def store_command(rebuild, data_dir):
    """Bring DATA_DIR/lookup.sqlite up to date: the keyed v3/v4 documents `mirror get` and the Python
    API answer from in well under a millisecond, the INSEE API Sirene 3.11 records `mirror serve`'s
    /api-sirene/3.11 lookups answer from, each unit's rows that `mirror get --date` rebuilds a past day
    from, and the search index.

    `mirror load`, `mirror update` and `mirror sync` keep it current themselves (unless
    MIRROR_LOOKUP_STORE=off); this command repairs or rebuilds it. Until it is current, lookups answer
    from the SQL views (same documents, slower) and search warns.

    A whole new store (a new snapshot, --rebuild) is built without holding the writer lock, so that
    updates go on meanwhile, then switched in under the lock and brought to the days applied since.
    Writers start this command in the background themselves when MIRROR_STORE_BUILD=background (the
    default above 2 million unités légales), its output in DATA_DIR/lookup-build.log.
    """
    _yield_cpu()
    import time

    from mirror.catalog.build import connect, prepare_writer
    from mirror.core import datadir as snapshot
    from mirror.lookup import build as lookup_build
    from mirror.lookup.store import store_path

    connect(data_dir, read_only=True).close()  # "no mirror in DATA_DIR" as one line
    t0 = time.monotonic()
    if rebuild or lookup_build.plan(data_dir) == "full":
        try:
            with snapshot.writer_lock(data_dir, "mirror store"):
                for note in prepare_writer(data_dir):
                    click.echo(note, err=True)
        except WriterBusy:  # a writer at work (the one that started this build): it cleaned up itself
            pass
        done = lookup_build.build_beside_writers(data_dir, rebuild=rebuild)
    else:
        with snapshot.writer_lock(data_dir, "mirror store"):
            for note in prepare_writer(data_dir):  # a crashed writer's leftovers, a catalog to repair
                click.echo(note, err=True)
            done = lookup_build.refresh(data_dir)
    size = store_path(data_dir).stat().st_size
    click.echo(
        f"lookup store {done} in {time.monotonic() - t0:.1f}s: {store_path(data_dir)} ({size / 1e6:,.1f} MB)"
    )


# --- serve: the local HTTP API (API Entreprise, recherche-entreprises) ---


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address requires --tokens.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (uvicorn); each reads the mirror on its own.")  # fmt: skip
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False, path_type=Path),
              help="File of accepted tokens, one per line (>= 16 characters; # comments). When given, API "
                   "routes require `Authorization: Bearer <token>` (v2 routes also take ?token=; "
                   "/api-sirene/3.11 routes X-INSEE-Api-Key-Integration: <token>).")  # fmt: skip
@click.option("--cors", multiple=True, metavar="ORIGIN",
              help="Allow browser calls from ORIGIN (repeatable; `*` for any). Off by default.")  # fmt: skip
@click.option("--require-context/--no-require-context", default=True, show_default=True,
              help="Refuse API Entreprise calls without context, object and recipient (422 00201/00202/00203) "
                   "as the real API does.")  # fmt: skip
@click.option("--root-path", default="", metavar="PATH",
              help="Path prefix the reverse proxy serves this server under and strips before passing a "
                   "request on (e.g. /sirene): links and Location headers include it.")  # fmt: skip
@click.option("--forwarded-allow-ips", default=None, metavar="IPS",
              help="Proxies whose X-Forwarded-Proto / X-Forwarded-For are trusted (comma separated; default "
                   "127.0.0.1; `*` for any).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Time limit of one request, in seconds (then 503).")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)  # fmt: skip
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One line per request on stderr: client, method, path (never the query string nor "
                   "headers), status, duration.")  # fmt: skip
@data_dir_option
def serve_command(host, port, workers, tokens_file, cors, require_context, root_path, forwarded_allow_ips,
                  timeout, log_level, access_log, data_dir):  # fmt: skip
    """Serve the mirror over HTTP: the API Entreprise INSEE routes (v2, v3, v4), recherche-entreprises'
    /search and /near_point, and the INSEE API Sirene 3.11 under /api-sirene/3.11 (/siren, /siret,
    /siret/liensSuccession, /informations), with the same paths, bodies and errors as the real APIs and no
    quota.

    Point a client at it by swapping its base URL (https://entreprise.api.gouv.fr ->
    http://127.0.0.1:8000; https://api.insee.fr/api-sirene/3.11 ->
    http://127.0.0.1:8000/api-sirene/3.11, the key header X-INSEE-Api-Key-Integration is accepted and,
    with --tokens, checked as a token). Also /health, /openapi.json and /docs. Each request reads the mirror's current
    state, so `mirror sync` can run beside the server: a new day or snapshot is served from the next
    request on, without a restart. Stops gracefully on SIGTERM / Ctrl-C.

    \b
    Behind a reverse proxy (nginx, Caddy, a load balancer):
      - keep --host 127.0.0.1 when the proxy runs on the same machine; any other --host needs
        --tokens FILE, and clients then send `Authorization: Bearer <token>` (have the proxy pass
        that header on; tokens are never logged; /health, /openapi.json and /docs need none);
      - serving under a path prefix the proxy strips: --root-path /prefix (links and Location
        headers carry it);
      - the scheme seen by clients (https) comes from X-Forwarded-Proto, trusted only from
        --forwarded-allow-ips (default 127.0.0.1); the host from the Host header the proxy sends
        (nginx: proxy_set_header Host $host; proxy_set_header X-Forwarded-Proto $scheme);
      - TLS, rate limits and body size limits belong to the proxy; the server already limits URL
        length (2 KB, 414), query parameters (32, 400) and time per request (--timeout, 503).

    \b
    Example:
      mirror serve --port 8000 &
      curl 'http://127.0.0.1:8000/v3/insee/sirene/unites_legales/356000000?context=test&object=test&recipient=13002526500013'
      curl 'http://127.0.0.1:8000/api-sirene/3.11/siren/356000000?date=2020-01-01'
    """
    from mirror.core.config import catalog_path
    from mirror.http.app import ServeConfig
    from mirror.http.server import serve

    if not catalog_path(data_dir).is_file():
        raise MirrorError(f"no mirror in {data_dir}: run `mirror load` or `mirror sync` first")
    config = ServeConfig(
        data_dir=str(data_dir),
        tokens_file=str(tokens_file) if tokens_file else None,
        cors=list(cors),
        require_context=require_context,
        timeout=timeout,
    )
    serve(
        config,
        host=host,
        port=port,
        workers=workers,
        root_path=root_path.rstrip("/"),
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level,
        access_log=access_log,
    )


# --- generate: synthetic monthly stock files shaped like INSEE's ---


@main.command("generate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the stock files into (created if missing).")  # fmt: skip
@click.option("--month", required=True, metavar="YYYY-MM",
              help="Stock month; the files are the register on the last day of the previous month.")  # fmt: skip
@click.option("--scale", default=1000, show_default=True, type=int, help="Number of unités légales.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same bytes).")
@click.option("--format", "fmt", default="zip", show_default=True, metavar="[zip|parquet|both]",
              help="zip: INSEE zipped CSV; parquet: INSEE Parquet types; both.")  # fmt: skip
@click.option("--layout", default="current", show_default=True, metavar="[3.9|3.11|current]",
              help="Column layout: 3.9 (33/48 columns, no StockDoublons), 3.11 (34/53), current (35/54).")  # fmt: skip
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--geolocalisation", "geolocation", is_flag=True,
              help="Also write INSEE's geolocation file (GeolocalisationEtablissement_Sirene_pour_etudes_"
              "statistiques_utf8, `;`-separated; ~86 % of the sirets); the six files stay the same bytes.")  # fmt: skip
@data_dir_option
def generate_cmd(
    out_dir: Path,
    month: str,
    scale: int,
    seed: int,
    fmt: str,
    layout: str,
    progress,
    geolocation: bool,
    data_dir: Path,
):
    """Write the six monthly Sirene stock files (synthetic, faithful to INSEE's format) into OUT.

    Example: mirror generate --out /tmp/stock --month 2026-10 --scale 100000 --geolocalisation
    """
    from mirror.synthetic.generate import run_generation

    if progress is None:
        progress = sys.stderr.isatty()
    res = run_generation(
        out_dir,
        month,
        scale=scale,
        seed=seed,
        fmt=fmt,
        layout=layout,
        progress=progress,
        geolocation=geolocation,
    )
    counts = ", ".join(f"{Path(res.paths[k]).name.split('_utf8')[0]} {n:,}" for k, n in res.rows.items())
    click.echo(
        f"Generated {month} stock in {out_dir} ({fmt}, layout {layout}): {counts} rows in {res.seconds:.1f}s"
    )

"""The ``rxradar`` command: argument parsing and display only; the work is done by the modules it calls."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from rxradar import catalog, settings as settings_mod
from rxradar.ingest import asap
from rxradar.ingest.pipeline import FileOutcome, expand_paths, ingest_files
from rxradar.schema import TABLES
from rxradar.workspace import Workspace

app = typer.Typer(help="rxradar: opioid surveillance over PDMP, death and registry data.", no_args_is_help=True,
                  add_completion=False)
ingest_app = typer.Typer(help="Load source files into the workspace (re-running a file changes nothing).",
                         no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
console = Console()
err = Console(stderr=True)

WorkspaceOpt = Annotated[Optional[Path], typer.Option("--workspace", "-w", help="workspace directory "
                                                      "[default: ./rxradar-workspace, or RXRADAR_WORKSPACE]")]
MmeOpt = Annotated[Optional[str], typer.Option("--mme-table", help="cdc2017_datafile or cdc2022")]


def _settings(workspace: Path | None, **extra) -> settings_mod.Settings:
    try:
        return settings_mod.load(workspace=workspace, **extra)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)


def _ingest(kind: str, paths: list[Path], workspace: Path | None) -> None:
    s = _settings(workspace)
    try:
        files = expand_paths(paths)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    total = sum(f.stat().st_size for f in files)
    with Workspace(s.workspace) as ws, Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, transient=True,
    ) as bar:
        task = bar.add_task(f"ingest {kind}", total=total)
        outcomes = ingest_files(ws, kind, files, s, progress=lambda _event, n: bar.advance(task, n))
    _report(kind, outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        # The exit status is what scripts and schedulers see: any file not ingested fails the run.
        err.print(f"[red]{len(failed)} file(s) failed, nothing of them kept:[/red]")
        for o in failed:
            err.print(f"  {o.message or o.name}", markup=False, highlight=False)
        raise typer.Exit(1)


ROWS_LISTED = 12  # with more files than this, list only those that need attention


def _report(kind: str, outcomes: list[FileOutcome]) -> None:
    notable = [o for o in outcomes if o.status == "failed" or o.rejected or o.warnings
               or (o.status == "already-ingested" and o.same_as != o.name)]
    listed = outcomes if len(outcomes) <= ROWS_LISTED else notable
    if listed:
        table = Table(title=f"ingest {kind}" + ("" if listed is outcomes else " (files needing attention)"))
        for name in ("file", "status", "records", "kept", "rejected", "warnings", "note"):
            table.add_column(name, justify="right" if name in {"records", "kept", "rejected", "warnings"} else "left",
                             overflow="fold")
        for o in listed:
            style = {"failed": "red", "already-ingested": "yellow"}.get(o.status, "green")
            table.add_row(o.name, f"[{style}]{o.status}[/{style}]", f"{o.records:,}", f"{_kept(o):,}",
                          f"{o.rejected:,}", f"{o.warnings:,}", o.message)
        console.print(table)
    done = [o for o in outcomes if o.status == "ingested"]
    console.print(f"{kind}: {len(done)} file(s) ingested ({sum(o.records for o in done):,} records, "
                  f"{sum(_kept(o) for o in done):,} kept, {sum(o.rejected for o in done):,} rejected, "
                  f"{sum(o.warnings for o in done):,} warnings); "
                  f"{sum(o.status == 'already-ingested' for o in outcomes)} already in the workspace; "
                  f"{sum(o.status == 'failed' for o in outcomes)} failed")


def _kept(o: FileOutcome) -> int:
    main = {"asap": "dispensations", "deaths": "deaths", "prescribers": "prescribers", "pharmacies": "pharmacies",
            "zip_counties": "zip_counties"}
    return next((o.rows[t] for t in main.values() if t in o.rows), 0)


@ingest_app.command("asap")
def ingest_asap(paths: Annotated[list[Path], typer.Argument(help="ASAP files or directories (.gz accepted)")],
                workspace: WorkspaceOpt = None) -> None:
    """ASAP 4.1/4.2/4.2A/4.2B/5.0 PDMP submission files."""
    _ingest("asap", paths, workspace)


@ingest_app.command("deaths")
def ingest_deaths(paths: Annotated[list[Path], typer.Argument(help="death-record CSV or NCHS IJE files")],
                  workspace: WorkspaceOpt = None) -> None:
    """Death records: CSV (death_id, last_name, ...) or NCHS IJE fixed-width mortality records."""
    _ingest("deaths", paths, workspace)


@ingest_app.command("prescribers")
def ingest_prescribers(paths: Annotated[list[Path], typer.Argument(help="NPPES dissemination CSV or simple CSV")],
                       workspace: WorkspaceOpt = None) -> None:
    """Prescriber registry: the NPPES file (npidata_pfile) or a CSV of npi, dea, names, specialty."""
    _ingest("prescribers", paths, workspace)


@ingest_app.command("pharmacies")
def ingest_pharmacies(paths: Annotated[list[Path], typer.Argument(help="pharmacy registry CSV")],
                      workspace: WorkspaceOpt = None) -> None:
    """Pharmacy registry CSV: pharmacy_id, npi, ncpdp, dea, name, address, ..., lat, lon."""
    _ingest("pharmacies", paths, workspace)


@ingest_app.command("zip-counties")
def ingest_zip_counties(paths: Annotated[list[Path], typer.Argument(help="ZIP-to-county crosswalk CSV (HUD USPS layout)")],
                        workspace: WorkspaceOpt = None) -> None:
    """ZIP-to-county crosswalk (HUD USPS ZIP-COUNTY file): places patients, who are reported by ZIP, in counties."""
    _ingest("zip_counties", paths, workspace)


def _open(workspace: Path | None, **extra) -> tuple[settings_mod.Settings, Workspace]:
    s = _settings(workspace, **extra)
    try:
        return s, Workspace(s.workspace, create=False)
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)


@app.command("tables")
def tables(workspace: WorkspaceOpt = None, mme_table: MmeOpt = None) -> None:
    """List canonical tables with their row counts."""
    s, ws = _open(workspace, mme_table=mme_table)
    with ws, catalog.open_engine(ws, s) as engine:
        counts = catalog.table_counts(engine)
    out = Table(title=f"workspace {s.workspace}")
    out.add_column("table")
    out.add_column("rows", justify="right")
    out.add_column("access")
    for name, n in counts.items():
        access = "identified (restricted)" if TABLES[name].restricted else (
            "has identified columns" if any(c.identified for c in TABLES[name].columns) else "pseudonymised")
        out.add_row(name, f"{n:,}", access)
    console.print(out)


@app.command("export")
def export(table: Annotated[str, typer.Argument(help="canonical table name, or a table of the last analysis")],
           out: Annotated[Path, typer.Option("--out", "-o", help="file to write")],
           fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet")] = "csv",
           identified: Annotated[bool, typer.Option("--identified", help="include names, birth dates and other "
                                                     "identified columns (audited)")] = False,
           workspace: WorkspaceOpt = None, mme_table: MmeOpt = None) -> None:
    """Write one table to CSV or Parquet, readable by you only; identified columns only with --identified."""
    s, ws = _open(workspace, mme_table=mme_table)
    with ws:
        try:
            result = catalog.export_table(ws, s, table, fmt, out, identified=identified)
        except (ValueError, catalog.RestrictedError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    console.print(f"wrote {result.rows:,} rows x {len(result.columns)} columns to {result.path}")


@app.command("rejects")
def rejects(workspace: WorkspaceOpt = None,
            limit: Annotated[int, typer.Option(help="rows to show")] = 50,
            by_file: Annotated[bool, typer.Option("--by-file", help="one row per reason and file")] = False) -> None:
    """Summarise rejected records and warnings by reason (and file), and revises or voids still
    waiting for their original."""
    s, ws = _open(workspace)
    with ws:
        summary = catalog.rejects_summary(ws, by_file=by_file)
        totals = catalog.reject_totals(ws)
        with catalog.open_engine(ws, s) as engine:
            orphans = asap.orphaned_corrections(engine)
    out = Table(title="rejects and warnings")
    for name in ("count", "severity", "field", "reason", "file" if by_file else "files"):
        out.add_column(name, justify="right" if name in ("count", "files") else "left")
    for r in summary[:limit]:
        out.add_row(f"{r.count:,}", r.severity, r.field or "", r.reason,
                    r.source_file if by_file else f"{r.files:,}")
    console.print(out)
    console.print(f"{totals.get('rejected', 0):,} rejected, {totals.get('warning', 0):,} warnings"
                  + (f" (showing {limit} of {len(summary)} groups)" if len(summary) > limit else ""))
    if orphans:
        # Computed from the workspace as it stands: an original that has arrived since is no orphan.
        console.print(f"{sum(o['corrections'] for o in orphans):,} orphaned correction(s): revise/void records "
                      f"whose original fill is not in the workspace, kept pending it (in "
                      + ", ".join(f"{o['source_file']} ({o['corrections']:,})" for o in orphans[:limit]) + ")")


@app.command("analyze")
def analyze(
    workspace: WorkspaceOpt = None,
    period: Annotated[Optional[int], typer.Option(help="a calendar year, e.g. 2023 (instead of --start/--end)")] = None,
    start: Annotated[Optional[str], typer.Option(help="first day, YYYY-MM-DD [default: first fill]")] = None,
    end: Annotated[Optional[str], typer.Option(help="last day, YYYY-MM-DD [default: last fill]")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="also write the results as CSV here")] = None,
    identified: Annotated[bool, typer.Option("--identified", help="put patient names and birth dates in "
                                             "patient_indicators.csv (audited)")] = False,
    mme_table: MmeOpt = None,
    early_refill: Annotated[Optional[str], typer.Option(help="overlap or shift")] = None,
    peer_scope: Annotated[Optional[str], typer.Option(help="state, region or national")] = None,
    indicator_params: Annotated[Optional[str], typer.Option(help="e.g. 'mpe_pbss.window_days=90'")] = None,
) -> None:
    """Patient indicators, prescriber peer comparison and pharmacy disproportion for a period."""
    from datetime import date

    from rxradar.analytics.analyze import STEPS
    from rxradar.analytics.analyze import analyze as run_analysis

    try:
        if period is not None and (start or end):
            raise ValueError("give --period or --start/--end, not both")
        first = date(period, 1, 1) if period else date.fromisoformat(start) if start else None
        last = date(period, 12, 31) if period else date.fromisoformat(end) if end else None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    s, ws = _open(workspace, mme_table=mme_table, early_refill=early_refill, peer_scope=peer_scope,
                  indicator_params=indicator_params)
    with ws, Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as bar:
        task = bar.add_task("analyze", total=len(STEPS))
        done = iter(range(len(STEPS) + 1))

        def step(name: str) -> None:
            bar.update(task, completed=next(done), description=f"analyze: {name}")

        try:
            result = run_analysis(ws, s, start=first, end=last, out=out, identified=identified, step=step)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    console.print(f"analysed {result.period}: {result.persons:,} persons ({result.patients:,} with opioids), "
                  f"{result.prescribers:,} prescribers ({result.flagged_prescribers:,} flagged), "
                  f"{result.pharmacies:,} pharmacies ({result.flagged_pharmacies:,} flagged)")
    for path in result.outputs:
        console.print(f"  wrote {path}")
    console.print(f"  rxradar leads -w {s.workspace}   shows the ranked prescribers and pharmacies")


@app.command("leads")
def leads(workspace: WorkspaceOpt = None,
          entity: Annotated[str, typer.Option(help="prescribers or pharmacies")] = "prescribers",
          limit: Annotated[int, typer.Option(help="rows to show")] = 15) -> None:
    """The ranked leads of the last analysis, with the measures that drive each score."""
    from rxradar.analytics.leads import top_leads

    s, ws = _open(workspace)
    with ws:
        try:
            rows = top_leads(ws.root, entity, limit)
        except (FileNotFoundError, ValueError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    out = Table(title=f"{entity}: strongest leads")
    for name in ("rank", "id", "peer group", "score", "driven by", "flags"):
        out.add_column(name, justify="right" if name in ("rank", "score") else "left")
    for r in rows:
        out.add_row(str(r["rank"]), r["id"], r["peer_group"], f"{r['lead_score']:.1f}",
                    "; ".join(r["lead_components"].split("; ")[:3]),
                    "\n".join(r["flags"]))
    console.print(out)


@app.command("evaluate")
def evaluate(truth: Annotated[Path, typer.Option("--truth", help="a synthetic state's truth/ folder")],
             workspace: WorkspaceOpt = None) -> None:
    """Score the detectors of the last analysis against a synthetic state's planted truth."""
    from rxradar.evaluation import evaluate as score

    _, ws = _open(workspace)
    with ws:
        try:
            scores = score(ws, truth)
        except FileNotFoundError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    out = Table(title="detectors against planted truth (k = number planted)")
    for name in ("detector", "planted", "precision@k = recall@k", "baseline (volume)", "flagged", "flag precision",
                 "flag recall"):
        out.add_column(name, justify="left" if name == "detector" else "right")
    for sc in scores:
        out.add_row(sc.detector.replace("_", " "), f"{sc.planted:,}", f"{sc.precision_at_k:.3f}",
                    f"{sc.baseline_precision_at_k:.3f}", f"{sc.flagged:,}",
                    "-" if sc.flag_precision is None else f"{sc.flag_precision:.3f}", f"{sc.flag_recall:.3f}")
    console.print(out)


@app.command("indicators")
def indicators_list(as_markdown: Annotated[bool, typer.Option("--markdown", help="print the reference as Markdown "
                                                             "(docs/indicators.md)")] = False) -> None:
    """Every patient indicator: id, kind, parameters and citation (the declarations in definitions.toml)."""
    from rxradar.indicators import indicators, markdown

    if as_markdown:
        print(markdown(), end="")
        return
    out = Table(title="patient indicators")
    for name in ("id", "kind", "title", "parameters", "citation"):
        out.add_column(name)
    for i in indicators():
        out.add_row(i.id, i.kind, i.title, ", ".join(f"{k}={v:g}" for k, v in i.parameters.items()), i.citation)
    console.print(out)


@app.command("settings")
def settings() -> None:
    """Every setting with its default and meaning (flags > RXRADAR_* variables > defaults)."""
    out = Table(title="settings")
    for name in ("name", "default", "environment", "help"):
        out.add_column(name)
    for name, default, help_text in settings_mod.describe():
        out.add_row(name, str(default), f"RXRADAR_{name.upper()}", help_text)
    console.print(out)


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write the state into")],
    state: Annotated[str, typer.Option(help="two-letter state whose real counties are used")] = "WV",
    persons: Annotated[Optional[int], typer.Option(help="number of residents (overrides --scale)")] = None,
    scale: Annotated[str, typer.Option(help="small (~20k persons), medium (~500k) or large (~10M, parquet only)")]
    = "small",
    start: Annotated[str, typer.Option(help="first day of the period, YYYY-MM-DD")] = "2019-01-01",
    end: Annotated[str, typer.Option(help="last day of the period, YYYY-MM-DD")] = "2023-12-31",
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same state")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="asap (files as pharmacies submit them) or parquet "
                                     "(canonical tables in a workspace, for benchmark scales)")] = "asap",
) -> None:
    """Build a synthetic state with planted truth: ASAP files, deaths, registries and truth/."""
    from datetime import date

    from rxradar.synth.build import synthesize
    from rxradar.synth.config import for_scale
    from rxradar.synth.population import overpopulated

    try:
        config = for_scale(scale, state=state.upper(), seed=seed, start=date.fromisoformat(start),
                           end=date.fromisoformat(end), **({"persons": persons} if persons else {}))
        if scale == "large" and fmt == "asap" and not persons:
            raise ValueError("the large scale is written as --format parquet only (100M dispensations of ASAP text "
                             "would take hours to write and ingest)")
        if warning := overpopulated(config):
            err.print(f"[yellow]warning:[/yellow] {warning}")
        with console.status("building the state") as status:
            summary = synthesize(config, out, fmt, step=lambda msg: status.update(msg))
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    console.print(f"wrote a synthetic {config.state} to [bold]{summary.out}[/bold]: {summary.persons:,} persons, "
                  f"{summary.prescribers:,} prescribers, {summary.pharmacies:,} pharmacies, "
                  f"{summary.dispensations:,} dispensations, {summary.deaths:,} deaths, "
                  f"{summary.anomalies:,} planted anomalies, {summary.faults:,} planted data faults")


HostOpt = Annotated[str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")]
PortOpt = Annotated[int, typer.Option(help="port to listen on")]


@app.command("serve")
def serve(workspace: WorkspaceOpt = None, host: HostOpt = "127.0.0.1", port: PortOpt = 8000,
          forwarded_allow_ips: Annotated[Optional[str], typer.Option(
              help="addresses of the reverse proxies in front (comma-separated) whose X-Forwarded-For names "
                   "the client, for the sign-in limits per address; by default no header is believed")] = None,
          secure_cookies: Annotated[Optional[bool], typer.Option(
              "--secure-cookies/--no-secure-cookies",
              help="cookies only over HTTPS: on when the dashboard is served behind TLS [setting secure_cookies]")] = None,
          max_request_bytes: Annotated[Optional[int], typer.Option(
              help="refuse request bodies over this many bytes (413) [setting max_request_bytes]")] = None,
          ) -> None:
    """The dashboard (maps, leads, profiles against peer deciles) and its JSON API, until Ctrl+C."""
    import getpass

    from rxradar.serve.server import AddressUnavailable, serve as run

    s, ws = _open(workspace, secure_cookies=secure_cookies, max_request_bytes=max_request_bytes)
    with ws:
        try:
            run(ws, s, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips, actor=getpass.getuser(),
                say=console.print,
                warn=lambda text: err.print(f"[yellow]warning:[/yellow] {text}"))
        except AddressUnavailable as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)


@app.command("report")
def report(workspace: WorkspaceOpt = None,
           out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("rxradar-report.html"),
           public: Annotated[bool, typer.Option("--public", help="places only: no prescriber or pharmacy "
                                                                 "named, county counts through disclosure "
                                                                 "control")] = False) -> None:
    """The last analysis as one self-contained HTML file (maps and charts inside; nothing fetched)."""
    from rxradar.serve.report import write_report
    from rxradar.serve.results import NoAnalysis

    s, ws = _open(workspace)
    with ws:
        try:
            written = write_report(ws, out, public=public, small_cell=s.small_cell)
        except NoAnalysis as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    kind = "public report (places only)" if public else \
        f"report naming {written.leads} prescribers and pharmacies (readable by you only)"
    console.print(f"wrote a {kind} to [bold]{out}[/bold]")


@app.command("purge")
def purge(workspace: WorkspaceOpt = None,
          before: Annotated[Optional[str], typer.Option(
              help="remove records dated before this day, YYYY-MM-DD (default: today less retention_years)")] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be removed; change "
                                                                  "nothing")] = False) -> None:
    """Remove identified records older than the retention limit: fills, deaths, identities no kept fill
    refers to, rejects' raw text, analyses' patient-level tables (audited; see docs/retention.md)."""
    from datetime import date

    from rxradar.retention import cutoff_for, purge as run_purge

    s, ws = _open(workspace)
    with ws:
        try:
            cutoff = cutoff_for(s, date.fromisoformat(before) if before else None, date.today())
            report = run_purge(ws, s, cutoff, dry_run=dry_run)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    why = "--before" if before else f"retention_years = {s.retention_years}"
    console.print(f"{'would remove' if dry_run else 'removed'}: identified records dated before {cutoff} ({why})")
    out = Table("table", "rows")
    out.columns[1].justify = "right"
    for table, rows in report.removed.items():
        out.add_row(table, f"{rows:,}")
    console.print(out)
    verb = "would be" if dry_run else "were"
    console.print(f"{report.files_rewritten} data file(s) {verb} rewritten and {report.files_removed} removed; "
                  "stored analysis: " + (f"patient-level tables {', '.join(report.analysis_tables)} {verb} removed, "
                                         "aggregates kept" if report.analysis_tables else "nothing to remove"))
    if dry_run:
        console.print("dry run: nothing was changed")
    else:
        console.print("the purge is in the audit log; the purged files stay known by their content hash, so "
                      "ingesting them again adds nothing back")


users_app = typer.Typer(help="Who may use the dashboard, with which role.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(name: Annotated[str, typer.Argument(help="user name (letters, digits, . _ @ -)")],
              role: Annotated[str, typer.Option(help="aggregate (counties, summary), investigator (also "
                                                     "prescriber and pharmacy leads), administrator")],
              workspace: WorkspaceOpt = None,
              password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from "
                                                                                    "standard input")] = False) -> None:
    """Add a dashboard user, or give an existing one a new role and password (asked for twice)."""
    import getpass
    import sys

    from rxradar.serve.auth import set_user

    s, ws = _open(workspace)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    with ws:
        try:
            set_user(ws, name, role, password, actor=getpass.getuser())
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    console.print(f"{name} may use the dashboard as {role}")


@users_app.command("list")
def users_list(workspace: WorkspaceOpt = None) -> None:
    """Every dashboard user with their role and failed sign-ins in a row (a locked user is
    unlocked by setting its password again with users add)."""
    from rxradar.serve.auth import users
    from rxradar.serve.throttle import LOCK_AFTER, failed_sign_ins

    s, ws = _open(workspace)
    with ws:
        rows, failures = users(ws.meta), failed_sign_ins(ws)
    table = Table("user", "role", "added", "failed sign-ins")
    for name, role, added in rows:
        failed = failures.get(name, 0)
        table.add_row(name, role, added[:19].replace("T", " "),
                      f"{failed} (locked)" if failed >= LOCK_AFTER else str(failed))
    console.print(table if rows else "no dashboard users yet: rxradar users add NAME --role investigator")


@users_app.command("remove")
def users_remove(name: str, workspace: WorkspaceOpt = None) -> None:
    """Take a user's access away (at once: sessions are checked against the users on every request)."""
    import getpass

    from rxradar.serve.auth import remove_user

    s, ws = _open(workspace)
    with ws:
        if not remove_user(ws, name, actor=getpass.getuser()):
            err.print(f"[red]error:[/red] no dashboard user {name!r}")
            raise typer.Exit(2)
    console.print(f"{name} may no longer use the dashboard")


@app.command("demo")
def demo(directory: Annotated[Path, typer.Option("--dir", help="where the synthetic state and workspace go")]
         = Path("rxradar-demo"),
         seed: Annotated[int, typer.Option(help="random seed of the synthetic state")] = 7,
         no_serve: Annotated[bool, typer.Option("--no-serve", help="stop after the analysis, without starting "
                                                                   "the dashboard (scripts and CI)")] = False,
         host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """Build a small synthetic state (planted truth included), analyse it, write the report, serve the dashboard."""
    from collections import Counter

    from rxradar.demo import demo_config, demo_steps
    from rxradar.synth.build import synthesize

    console.rule("[bold]rxradar demo")
    config = demo_config(seed)
    state = directory / "state"
    with console.status("building a synthetic state") as status:
        summary = synthesize(config, state, step=lambda msg: status.update(msg))
    console.print(f"synthetic {config.state}: {summary.persons:,} persons, {summary.prescribers:,} prescribers, "
                  f"{summary.pharmacies:,} pharmacies, {summary.dispensations:,} dispensations and {summary.deaths:,} "
                  f"deaths, {config.start} to {config.end}, in [bold]{state}[/bold]")
    workspace = directory / "workspace"
    for step in demo_steps(state):
        console.rule(step.title)
        _ingest(step.kind, step.paths, workspace)
    tables(workspace=workspace, mme_table=None)
    rejects(workspace=workspace, limit=12)
    results = directory / "results"
    console.rule("analysis: patient indicators, prescribers against peers, pharmacies")
    analyze(workspace=workspace, period=None, start=None, end=None, out=results, identified=False, mme_table=None,
            early_refill=None, peer_scope=None, indicator_params=None)
    leads(workspace=workspace, entity="prescribers", limit=8)
    leads(workspace=workspace, entity="pharmacies", limit=4)
    import pyarrow.csv as pacsv

    planted = Counter(pacsv.read_csv(state / "truth" / "anomalies.csv")["kind"].to_pylist())
    console.rule("planted truth, and how the detectors score against it")
    for kind, n in sorted(planted.items()):
        console.print(f"  {n:4d} {kind.replace('_', ' ')}")
    evaluate(truth=state / "truth", workspace=workspace)
    console.rule("report")
    report(workspace=workspace, out=results / "report.html", public=False)
    console.rule("where to look")
    console.print(f"  {results}/prescriber_metrics.csv, pharmacy_metrics.csv, deciles.csv, county_metrics.csv: "
                  "every measure, percentile, flag and reason\n"
                  f"  {results}/report.html: the analysis as one HTML file, maps and profiles included\n"
                  f"  rxradar leads -w {workspace} --entity pharmacies\n"
                  f"  rxradar tables -w {workspace}\n"
                  f"  rxradar rejects -w {workspace}\n"
                  f"  {state / 'truth'}/README.md explains the planted truth\n"
                  f"  rxradar serve -w {workspace}   the dashboard and API\n"
                  "Run the demo again: the same seed gives the same files, nothing is ingested twice, and the "
                  "analysis gives the same numbers.")
    if not no_serve:
        import getpass

        from rxradar.serve.server import demo_user

        console.rule("dashboard")
        with Workspace(workspace, create=False) as ws:
            password = demo_user(ws, actor=getpass.getuser())
        console.print(f"sign in as [bold]demo[/bold] with password [bold]{password}[/bold] (new on every demo run)")
        serve(workspace=workspace, host=host, port=port)


@app.callback()
def main(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                              help="log progress; -vv also each engine step with its time "
                                                   "(never row-level data)")] = 0) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("rxradar").setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)])

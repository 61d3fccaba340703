"""reconcile: compare manifests with the store; with --fix, repair what is safe.

Exit codes: 0 everything consistent (or fixed), 1 drift remains, 2 bad input.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from actor_maker.cli.output import counted
from actor_maker.cli.params import ActorOrAllArg, AllActorsOpt, check_one_or_all
from actor_maker.cli.state import State
from actor_maker.errors import ExitCode, InputError
from actor_maker.reconcile import DEFAULT_MIN_AGE, Report, reconcile, reconcile_all
from actor_maker.store import open_store
from actor_maker.validation import check_actor_id

#: The kinds of drift in their singular form ("missing" and "mismatched" have none).
_ONE = {"orphans": "orphan", "duplicates": "duplicate", "statistics": "statistic"}


def _counts(counts: dict[str, int]) -> str:
    words = (counted(n, _ONE.get(kind, kind), kind) for kind, n in counts.items() if n)
    return ", ".join(words) or "none"


def _lines(report: Report, *, verbose: bool) -> list[str]:
    """The readable summary of one report: a headline, then one line per item."""
    head = f"{report.actor_id} {report.actor_name}".strip()
    if report.consistent:
        status = "consistent"
    else:
        status = f"found {_counts(report.found())}; left {_counts(report.left())}"
    n = len(report.external)
    external = counted(n, "external entry", "external entries")
    lines = [f"{head}: {status}; {external} kept as {'it is' if n == 1 else 'they are'}"]
    for o in report.orphans:
        what = "adoptable" if o.adoptable and not o.recent else f"not adopted: {o.reason}"
        done = f" → {o.action}" if o.action else ""
        lines.append(f"  orphan     {o.key} ({o.size} bytes, {what}){done}")
    for m in report.missing:
        done = f" → {m.action}" if m.action else ""
        lines.append(f"  missing    {m.filename}: no object {m.key}{done}")
    for x in report.mismatched:
        done = f" → {x.action}" if x.action else ""
        lines.append(
            f"  mismatch   {x.filename} {x.field}: {x.recorded} in the manifest, "
            f"{x.actual} in the store{done}"
        )
    for d in report.duplicates:
        kind = "identical" if d.identical else f"{d.distinct} different versions"
        kind += ", external" if d.external else ""
        done = f" → {d.action}" if d.action else ""
        lines.append(f"  duplicate  {d.filename} ×{d.count} ({kind}){done}")
    for s in report.statistics:
        done = f" → {s.action}" if s.action else ""
        lines.append(f"  statistic  {s.name}: {s.recorded} recorded, {s.actual} actual{done}")
    if verbose:
        for e in report.external:
            lines.append(
                f"  external   {e.filename} ({e.reason}{': ' + e.s3_url if e.s3_url else ''})"
            )
        lines += [f"  fixed      {line}" for line in report.fixed]
    lines += [f"  error      {line}" for line in report.errors]
    return lines


def reconcile_cmd(
    ctx: typer.Context,
    actor_id: ActorOrAllArg = None,
    all_actors: AllActorsOpt = False,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Adopt orphans whose metadata says where they came from, mark missing "
            "objects, correct size/md5, drop exact duplicate entries, recompute statistics.",
        ),
    ] = False,
    delete_orphans: Annotated[
        bool,
        typer.Option(
            "--delete-orphans",
            help="With --fix: move orphans that cannot be adopted to the trash.",
        ),
    ] = False,
    min_age: Annotated[
        float,
        typer.Option(
            "--min-age",
            help="Leave orphans younger than this many seconds alone (uploads in flight).",
        ),
    ] = DEFAULT_MIN_AGE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report(s) as JSON.")] = False,
) -> None:
    """Compare manifests with the store; nothing changes without --fix."""
    state: State = ctx.obj
    check_one_or_all(actor_id, all_actors)
    if delete_orphans and not fix:
        raise InputError("--delete-orphans needs --fix")
    store = open_store(state.settings)
    if actor_id is not None:
        check_actor_id(actor_id)
        reports = [
            reconcile(store, actor_id, fix=fix, delete_orphans=delete_orphans, min_age=min_age)
        ]
    else:
        reports = reconcile_all(store, fix=fix, delete_orphans=delete_orphans, min_age=min_age)
    if as_json:
        data = [r.to_json() for r in reports]
        print(json.dumps(data if all_actors else data[0], indent=2, ensure_ascii=False))
    else:
        for report in reports:
            for line in _lines(report, verbose=state.verbose > 0):
                state.out.print(line, markup=False, highlight=False)
        if all_actors:
            ok = sum(1 for r in reports if r.ok)
            state.out.print(
                f"{counted(len(reports), 'actor')}: {ok} consistent or fixed, "
                f"{len(reports) - ok} with drift left",
                markup=False,
                highlight=False,
            )
    if not all(r.ok for r in reports):
        raise typer.Exit(ExitCode.FAILED)


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_cmd)

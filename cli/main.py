"""`smo-oversight` command line: onboarding checks and synthetic data.

    smo-oversight check-delivery --smo SMO_ID [--out DIR] FILE...   dry run of the delivery gate
    smo-oversight profile init --smo SMO_ID --out PROFILE.yaml FILE...   starter profile
    smo-oversight generate --scale demo --weeks 8 --seed 7 --out DIR
    smo-oversight evidence --study STUDY [--from WEEK --to WEEK] --out DIR   inspection pack

check-delivery exits 0 when every file would be accepted, 1 when any would be rejected and 2
for usage or profile errors. It runs the pipeline's own gate (`ingest.gate.check_delivery`);
the site roster comes from the warehouse's read-only copy (the warehouse itself before the
first run that makes one) when it can be read, plus any roster file given in
the same call, as in a pipeline batch. With a CDISC SDTM profile the files are the domains of
one delivery (DM, DS, SV, optional DV and SUPPDV). `--out DIR` writes the canonical rows that
would be loaded, one typed `DIR/<feed>.parquet` per accepted feed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from core.settings import load_settings
from expectations.contracts import roster_keys
from expectations.feeds import SPONSOR_ID


def _roster_from_warehouse(
    warehouse: Path, smo_id: str
) -> tuple[frozenset[str] | None, dict[str, dt.date], str]:
    """The SMO's current roster keys and each study's start, and where they came from."""
    if not warehouse.exists():
        return (
            frozenset(),
            {},
            f"no warehouse at {warehouse}: sites are checked only against rosters given here",
        )
    import duckdb

    from ingest import warehouse as wh
    from ingest.plausibility import roster_study_starts

    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            roster = wh.current_roster(con, smo_id)
            return roster, roster_study_starts(con, smo_id), f"roster from {warehouse}"
    except duckdb.Error as exc:
        return (
            frozenset(),
            {},
            f"warehouse not readable ({str(exc).splitlines()[0]}); roster from files given here only",
        )


def _with_action_targets(context, warehouse: Path):
    """The sponsor's actions are checked against the targets the warehouse knows; without a
    readable warehouse `action.target_exists` is not applied (said in the header)."""
    import dataclasses

    import duckdb

    from ingest.plausibility import action_targets

    if warehouse.exists():
        try:
            with duckdb.connect(str(warehouse), read_only=True) as con:
                targets = action_targets(con)
            return dataclasses.replace(context, targets=targets), f"targets from {warehouse}"
        except duckdb.Error as exc:
            why = f"warehouse not readable ({str(exc).splitlines()[0]})"
    else:
        why = f"no warehouse at {warehouse}"
    return context, f"{why}: action targets are not checked (action.target_exists)"


def check_delivery_command(args: argparse.Namespace) -> int:
    from ingest.gate import check_delivery
    from ingest.plausibility import plausibility, with_roster
    from ingest.profiles import ProfileError, load_profile
    from ingest.rejection_report import report_markdown

    settings = load_settings()
    profile_path = (
        Path(args.profile) if args.profile else settings.profiles_dir / f"{args.smo}.yaml"
    )
    try:
        profile = load_profile(profile_path)
    except ProfileError as exc:
        print(f"profile error: {exc}", file=sys.stderr)
        return 2
    if profile.smo_id != args.smo:
        print(
            f"profile error: {profile_path} is for {profile.smo_id}, not {args.smo}",
            file=sys.stderr,
        )
        return 2
    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"usage error: not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    # The read-only copy refreshed after every run: opening the live warehouse would make a
    # running refresh wait for this command (README "Querying the warehouse").
    snapshot = settings.warehouse_snapshot_path
    source_db = snapshot if snapshot.exists() else settings.warehouse_path
    roster, starts, source = _roster_from_warehouse(source_db, profile.smo_id)
    context = plausibility(settings, starts)
    if profile.smo_id == SPONSOR_ID:
        context, source = _with_action_targets(context, source_db)
    print(f"# {profile.smo_id}: profile {profile_path} (version {profile.version}); {source}\n")
    # Rosters first, as in a pipeline batch: a roster accepted here counts for later files.
    ordered = sorted(
        paths, key=lambda p: 0 if (m := profile.feed_for(p.name)) and m[0].feed == "sites" else 1
    )
    received = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if profile.sdtm is not None:
        from ingest.sdtm import check_sdtm_delivery

        delivery = check_sdtm_delivery(
            paths, profile, received_at=received, roster=roster, plausibility=context
        )
        results = delivery.reports(profile)
        for result in results:
            print(report_markdown(result))
        rejected = sum(not r.accepted for r in results)
        print(
            f"SDTM delivery of {len(paths)} file(s): "
            + ", ".join(
                f"{r.feed or 'delivery'} {'accepted' if r.accepted else 'rejected'}"
                for r in results
            )  # fmt: skip
            + "."
        )
        _write_out(args.out, results)
        return 1 if rejected else 0
    rejected = 0
    results = []
    for path in ordered:
        result = check_delivery(
            path, profile, received_at=received, roster=roster, plausibility=context
        )
        print(report_markdown(result))
        results.append(result)
        if not result.accepted:
            rejected += 1
        elif result.feed == "sites" and result.frame is not None:
            keys = roster_keys(result.frame["study_id"], result.frame["site_id"])
            roster = keys | (roster or frozenset())
            context = with_roster(context, result.frame)
    verdict = f"{len(paths) - rejected} of {len(paths)} file(s) would be accepted"
    print(verdict + ("." if not rejected else f"; {rejected} rejected."))
    _write_out(args.out, results)
    return 1 if rejected else 0


def _write_out(out: str | None, results: list) -> None:
    """`--out DIR`: the typed canonical rows each accepted feed would load (`<feed>.parquet`;
    several accepted files of one feed are stacked). Rejected files load nothing."""
    if not out:
        return
    import polars as pl

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    frames: dict[str, list[pl.DataFrame]] = {}
    for result in results:
        if result.accepted and result.frame is not None and result.feed:
            frames.setdefault(result.feed, []).append(result.frame)
    for feed, parts in frames.items():
        path = target / f"{feed}.parquet"
        frame = pl.concat(parts, how="diagonal")
        frame.write_parquet(path)
        print(f"wrote {path}: {frame.height:,} row(s) that would be loaded into raw.{feed}")
    skipped = sorted({r.feed for r in results if r.feed and not r.accepted} - set(frames))
    if skipped:
        print(f"not written (rejected, nothing would load): {', '.join(skipped)}")


def profile_init_command(args: argparse.Namespace) -> int:
    from ingest.profile_init import starter_profile
    from ingest.profiles import ProfileError, load_profile

    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"usage error: not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"usage error: {out} exists (use --force to overwrite it)", file=sys.stderr)
        return 2
    text = starter_profile(args.smo, paths)
    out.write_text(text, encoding="utf-8")
    try:
        load_profile(out)
        state = "it loads; review every 'guess' and 'REVIEW' comment"
    except ProfileError as exc:
        state = f"it does not load yet ({exc}); complete it by hand"
    print(f"wrote {out} from {len(paths)} file(s): {state}, then run check-delivery.")
    return 0


def generate_command(args: argparse.Namespace) -> int:
    from synthetic.generate import DEFAULT_END, file_counts, generate

    scale = args.scale if args.scale in ("demo", "large") else float(args.scale)
    end = dt.date.fromisoformat(args.end_date) if args.end_date else DEFAULT_END
    withheld: dict[str, list[str]] = {}
    for item in args.withhold:
        smo_id, sep, what = item.partition(":")
        if not sep or not what:
            print(f"--withhold {item!r}: expected SMO:FEED or SMO:FEED.COLUMN", file=sys.stderr)
            return 2
        withheld.setdefault(smo_id, []).append(what)
    try:
        truth = generate(
            Path(args.out), scale=scale, weeks=args.weeks, seed=args.seed, end=end,
            withheld=withheld,
        )  # fmt: skip
    except ValueError as exc:
        print(f"--withhold: {exc}", file=sys.stderr)
        return 2
    counts = file_counts(Path(args.out))
    print(
        f"Generated {sum(counts.values())} delivery files for {len(counts)} SMOs into {args.out}/inbox"
    )
    print(f"  deliveries: {truth['delivery_dates'][0]} .. {truth['delivery_dates'][-1]} (weekly)")
    print(
        f"  planted sites: {len(truth['planted_sites'])}, retroactive edits: {len(truth['retroactive_edits'])}"
    )
    print(f"  ground truth: {args.out}/ground_truth.json; profiles: {args.out}/profiles/")
    return 0


EVIDENCE_HELP = """Write an inspection evidence pack for one study: DIR (a new or empty
folder) and DIR.zip beside it. DIR/index.html says what each file shows; manifest.json holds
the SHA-256 of every file. Tables (CSV and Parquet, filtered to the study and its as-of weeks
between --from and --to, default all published weeks): site flags, flag lifecycle and episodes,
QTL evaluations, actions (when the publish has the actions mart), the KRI definition versions
the flags name, lineage (every delivery in effect: file, SHA-256, received time, verdict),
rejected deliveries, and the ops.gate_results rows of those deliveries and of the run that
built the publish. Each week's report is the one kept at publish time; if only that week's BI
file is kept it is rendered from it, otherwise the index says no report is kept. Reads the
current publish ($SMO_PUBLISH_DIR) and the warehouse's read-only copy, never the warehouse.
Exit 0 written, 2 on an unknown study, an empty week range or nothing published."""


def evidence_command(args: argparse.Namespace) -> int:
    import duckdb

    from publishing.evidence import EvidenceError, write_evidence_pack

    settings = load_settings()
    try:
        pack = write_evidence_pack(
            publish_dir=settings.publish_dir,
            snapshot=settings.warehouse_snapshot_path,
            study=args.study,
            out=Path(args.out),
            week_from=args.week_from,
            week_to=args.week_to,
        )
    except EvidenceError as exc:
        print(f"evidence: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:  # e.g. a publish or warehouse copy that cannot be read
        print(
            f"evidence: cannot read the publish or the warehouse copy: {str(exc).splitlines()[0]}",
            file=sys.stderr,
        )
        return 2
    print(
        f"Evidence pack for {pack.study_id}, as-of weeks {pack.weeks[0]} .. {pack.weeks[-1]} "
        f"({len(pack.weeks)}), publish {pack.publish_id}: {len(pack.files)} files"
    )
    for note in pack.notes:
        print(f"  {note}")
    print(f"  {(pack.folder / 'index.html').as_uri()}\n  {pack.zip_path}")
    return 0


def _week(end: bool):
    def parse(text: str) -> dt.date:
        from publishing.evidence import parse_week

        try:
            return parse_week(text, end=end)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smo-oversight", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-delivery", help="dry-run the delivery gate on files")
    check.add_argument("--smo", required=True, help="SMO id (the profile's smo_id)")
    check.add_argument("--profile", help="profile YAML (default: $SMO_PROFILES_DIR/<SMO>.yaml)")
    check.add_argument(
        "--out", metavar="DIR", help="write the rows that would load as DIR/<feed>.parquet"
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=check_delivery_command)
    profile = sub.add_parser("profile", help="profile helpers")
    profile_sub = profile.add_subparsers(dest="profile_command", required=True)
    init = profile_sub.add_parser("init", help="write a starter profile from sample files")
    init.add_argument("--smo", required=True, help="SMO (or EDC source) id for the profile")
    init.add_argument("--out", required=True, metavar="PROFILE.yaml")
    init.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    init.add_argument("files", nargs="+", metavar="FILE")
    init.set_defaults(func=profile_init_command)
    gen = sub.add_parser("generate", help="write a synthetic SMO portfolio")
    gen.add_argument(
        "--scale", default="demo", help="demo, large, or a multiplier of demo (e.g. 4)"
    )
    gen.add_argument("--weeks", type=int, default=8, help="weekly deliveries per SMO")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument(
        "--end-date", help="last delivery date, YYYY-MM-DD (default: fixed 2026-11-16)"
    )
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument(
        "--withhold",
        action="append",
        default=[],
        metavar="SMO:FEED[.COLUMN]",
        help="an SMO does not deliver this feed or column (repeatable), e.g. "
        "SMO-NORDIC:deviations or SMO-IBERIA:visits.crf_entry_date",
    )
    gen.set_defaults(func=generate_command)
    evidence = sub.add_parser(
        "evidence", help="write an inspection evidence pack for a study", description=EVIDENCE_HELP
    )
    evidence.add_argument("--study", required=True, help="study id, e.g. SYN-001")
    evidence.add_argument(
        "--from",
        dest="week_from",
        type=_week(end=False),
        metavar="WEEK",
        help="first as-of week: YYYY-MM-DD or ISO week YYYY-Www (default: the first published)",
    )
    evidence.add_argument(
        "--to",
        dest="week_to",
        type=_week(end=True),
        metavar="WEEK",
        help="last as-of week, same forms (default: the latest published)",
    )
    evidence.add_argument("--out", required=True, metavar="DIR", help="new or empty folder")
    evidence.set_defaults(func=evidence_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""
The ``txoci`` command: maintenance of a data dir, safe beside a running
``twistd oci`` on the same data dir.

``txoci check [--data-dir D] [--repair] [--json]``
    Re-hash every blob and check that the metadata and the files agree.
    Exit status 0 when clean, 1 when a problem was found (repaired or not).

``txoci du [--data-dir D] [--json]``
    Storage use per repository (a blob shared by several repositories counts
    once in each), and for the whole registry (each blob once).

``txoci gc [--data-dir D] [--dry-run] [--grace S] [--manifest-retention H] [--upload-max-age H] [--json]``
    Reclaim unreferenced blobs, expired untagged manifests and abandoned
    uploads (see :mod:`txoci.storage.gc`); with ``--dry-run``, only print what
    would be reclaimed, why, and how many bytes.
``txoci user add|remove``, ``txoci access explain``
    Manage the htpasswd file and explain access decisions: see
    :mod:`txoci.service.authcli`.

Exit status 2 means the command could not run (no such data dir, bad usage).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from txoci.service.authcli import add_auth_commands, run_auth_command
from txoci.storage import gc
from txoci.storage.check import DEFAULT_GRACE, CheckReport, DataDirError, Usage, check, usage

DEFAULT_DATA_DIR = "txoci-data"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="txoci", description="Maintain a txoci data dir.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_dir(command: argparse.ArgumentParser) -> None:
        command.add_argument("--data-dir", "-d", default=DEFAULT_DATA_DIR,
                             help=f"the registry's data dir (default {DEFAULT_DATA_DIR})")
        command.add_argument("--json", action="store_true", help="print one JSON document")

    checking = commands.add_parser(
        "check", help="verify every blob and that metadata and files agree",
        description="Re-hash every blob, verify manifests, and check that the metadata and the "
        "blob store agree. Exit status 1 if anything is wrong.",
    )
    data_dir(checking)
    checking.add_argument("--repair", action="store_true",
                          help="move corrupt and orphaned files under quarantine/ (never deletes) "
                          "and mark corrupt or missing blobs so clients push them again")
    checking.add_argument("--grace", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
                          help="leave files changed this recently alone (default %(default)s)")
    checking.add_argument("--verbose", "-v", action="store_true", help="list every blob hashed")

    sizing = commands.add_parser("du", help="storage use per repository",
                                 description="Storage use per repository, shared blobs counted "
                                 "once per repository, and the total with each blob counted once.")
    data_dir(sizing)
    _add_gc_parser(commands, data_dir)
    add_auth_commands(commands)
    return parser


def _hours(text: str) -> float:
    hours = float(text)
    if hours < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return hours * 3600.0


def _retention(text: str) -> float | None:
    return None if text == "keep" else _hours(text)


def _add_gc_parser(commands: Any, data_dir: Any) -> None:
    collecting = commands.add_parser(
        "gc", help="reclaim unreferenced blobs, expired manifests and abandoned uploads",
        description="Reclaim blobs no repository links or manifest references, untagged "
        "unreferenced manifests past their retention, and abandoned uploads. Safe while "
        "twistd oci serves the same data dir.",
    )
    data_dir(collecting)
    collecting.add_argument("--dry-run", "-n", action="store_true",
                            help="print what would be reclaimed, and why, without changing anything")
    collecting.add_argument("--grace", type=float, default=gc.DEFAULT_GRACE, metavar="SECONDS",
                            help="keep blobs unreferenced (and files unrecorded) for less than this "
                            "long (default %(default)s)")
    collecting.add_argument("--manifest-retention", type=_retention, default=None, metavar="HOURS",
                            help="delete untagged, unreferenced manifests after this many hours; "
                            "'keep' (the default) never deletes them")
    collecting.add_argument("--upload-max-age", type=_hours, default=gc.DEFAULT_UPLOAD_MAX_AGE,
                            metavar="HOURS", help="purge uploads without a request for this many "
                            "hours (default 24)")


def _print_gc(report: gc.Report, out: IO[str]) -> None:
    verb = "would reclaim" if report.dry_run else "reclaimed"
    for item in report.items:
        print(f"{verb} {item.kind}: {item.subject} ({human(item.size)}): {item.reason}", file=out)
    if report.recovered:
        print(f"finished {report.recovered} file(s) left in {gc.TRASH}/ by an interrupted run",
              file=out)
    if report.kept:
        print(f"kept {report.kept} candidate(s) found in use again at deletion time", file=out)
    counts = ", ".join(
        f"{report.count(kind)} {kind}{'s' if report.count(kind) != 1 else ''}"
        for kind in gc.KINDS
    )
    print(f"{'dry run: ' if report.dry_run else ''}{verb} {human(report.bytes)} in "
          f"{report.data_dir}: {counts}", file=out)


def human(size: int) -> str:
    """``1536`` as ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _print_check(report: CheckReport, out: IO[str]) -> None:
    print(
        f"checked {report.blobs} blobs ({human(report.blob_bytes)}), {report.manifests} manifests "
        f"and {report.upload_files} upload files in {report.data_dir}",
        file=out,
    )
    for problem in report.problems:
        line = f"{problem.kind}: {problem.subject}: {problem.detail}"
        if problem.repaired:
            line += f" [repaired: {problem.repaired}]"
        print(line, file=out)
    if report.skipped_recent:
        print(f"{report.skipped_recent} recently changed files skipped (pushes in flight?)", file=out)
    if report.clean:
        print("no problems found", file=out)
    else:
        repaired = sum(1 for problem in report.problems if problem.repaired)
        print(f"{len(report.problems)} problems found, {repaired} repaired", file=out)


def _print_usage(result: Usage, out: IO[str]) -> None:
    header = ("REPOSITORY", "BLOBS", "BLOB BYTES", "MANIFESTS", "UPLOADS", "TOTAL")
    rows = [
        (u.repository, str(u.blobs), human(u.blob_bytes), str(u.manifests), str(u.uploads), human(u.total))
        for u in result.repositories
    ]
    total = result.total
    rows.append(("(all, each blob once)", str(total.blobs), human(total.blob_bytes),
                 str(total.manifests), str(total.uploads), human(total.total)))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip(), file=out)
    print(f"unreferenced blobs (reclaimable by GC): {result.unreferenced_blobs}, "
          f"{human(result.unreferenced_blob_bytes)}", file=out)


def main(
    argv: list[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
) -> int:
    """Run ``txoci``; return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        options = _parser().parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0)
    status = run_auth_command(options, out, err, stdin or sys.stdin)
    if status is not None:
        return status
    try:
        if options.command == "check":
            progress: Any = (lambda line: print(line, file=out)) if options.verbose else None
            report = check(options.data_dir, repair=options.repair, grace=options.grace,
                           progress=progress)
            if options.json:
                print(json.dumps(report.as_json(), indent=2), file=out)
            else:
                _print_check(report, out)
            return 0 if report.clean else 1
        if options.command == "gc":
            collected = gc.collect(
                options.data_dir,
                gc.Policy(options.grace, options.manifest_retention, options.upload_max_age),
                dry_run=options.dry_run,
            )
            if options.json:
                print(json.dumps(collected.as_json(), indent=2), file=out)
            else:
                _print_gc(collected, out)
            return 0
        result = usage(options.data_dir)
        if options.json:
            print(json.dumps(result.as_json(), indent=2), file=out)
        else:
            _print_usage(result, out)
        return 0
    except DataDirError as error:
        print(f"txoci {options.command}: {error}", file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())

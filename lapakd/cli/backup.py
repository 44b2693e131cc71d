"""CLI verb `backup`: a consistent snapshot of the desk while the daemon runs, `--verify` it,
`--keep N` of them (lapakd/store/backup.py does the work)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lapakd.cli import _print_json, command


def add_verbs(sub: Any, common: argparse.ArgumentParser, actor: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "backup", parents=[common],
        help="snapshot the database, attachments and rules into DIR (safe while running)")
    p.add_argument("dir", metavar="DIR",
                   help="backup folder (a new lapakd-YYYYmmddTHHMMSSZ/ is made in it); with "
                   "--verify: that folder (every snapshot) or one snapshot")
    p.add_argument("--verify", action="store_true",
                   help="re-check every file's sha256 and the database's integrity; exit 1 "
                   "with one line per problem")
    p.add_argument("--keep", type=int, metavar="N",
                   help="after the backup, remove the oldest lapakd snapshots beyond N")


@command("backup")
def cmd_backup(args: argparse.Namespace) -> int:
    from lapakd.errors import LapakdError
    from lapakd.store import backup

    if args.verify:
        if args.keep is not None:
            raise LapakdError("backup: --keep goes with a backup, not with --verify")
        results = [backup.verify(path) for path in backup.to_verify(Path(args.dir))]
        problems = [p for r in results for p in r.problems]
        if args.json:
            _print_json({"ok": not problems, "snapshots": [r.as_dict() for r in results]})
        else:
            for line in problems:
                print(line, file=sys.stderr)
            for r in results:
                if not r.problems:
                    print(f"{r.path}: {r.files} files ok, database integrity ok")
            if problems:
                print(f"{len(problems)} problem(s) in {len(results)} snapshot(s)", file=sys.stderr)
        return 1 if problems else 0

    if args.keep is not None and args.keep < 1:
        raise LapakdError(f"backup: --keep {args.keep}: keep at least 1 snapshot")
    from lapakd.config import load_config

    cfg = load_config(args.config)
    result = backup.create(Path(args.dir), cfg.data_dir, cfg.rules_dir,
                           version=_version(), keep=args.keep)
    if args.json:
        _print_json(result.as_dict())
    else:
        print(f"{result.path}: {result.files} files, {result.bytes} bytes "
              f"({result.linked} attachments hard-linked)")
        for old in result.removed:
            print(f"removed old snapshot {old}")
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lapakd")
    except metadata.PackageNotFoundError:
        return ""

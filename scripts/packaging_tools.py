"""Helpers of ``scripts/check_packaging.sh`` (standard library only).

Commands:

* ``export ROOT DEST``: copy the files git knows (tracked and untracked,
  not ignored) to ``DEST``, so builds never touch the clone;
* ``dry-run REPORT BEFORE``: from ``pip install --dry-run --report``, fail
  if pip would change an installed package or bring any package but
  ``mmcam_ext``;
* ``freeze-diff BEFORE AFTER [--new NAME ...] [--any-new]``: compare two
  ``pip freeze`` files; fail on a changed or removed package, or on a new
  one not allowed.

Each prints one line saying what it checked; exit status 1 on failure.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional


def normalize(name: str) -> str:
    """PEP 503 name: ``Mmcam_Ext`` -> ``mmcam-ext``."""
    return re.sub(r'[-_.]+', '-', name).lower()


def read_freeze(path: str) -> Dict[str, str]:
    """``pip freeze`` output as ``{name: version-or-line}``.

    Args:
        path (str): The file.

    Returns:
        dict[str, str]: Normalised name to the rest of its line.
    """
    found = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        name = re.split(r'==| @ ', line, maxsplit=1)[0]
        found[normalize(name)] = line
    return found


def export(root: str, dest: str) -> int:
    """Copy the clone's files (what git lists) to ``dest``."""
    out = subprocess.run(
        ['git', '-C', root, 'ls-files', '-z', '-co', '--exclude-standard'],
        check=True,
        capture_output=True,
    ).stdout
    count = 0
    for rel in filter(None, out.decode().split('\0')):
        src = Path(root) / rel
        if src.is_file() and not src.is_symlink():
            target = Path(dest) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
            count += 1
    print(f'export: {count} files of {root} -> {dest}')
    return 0


def dry_run(report: str, before: str) -> int:
    """Check a ``pip install --dry-run --report`` against a freeze."""
    installed = read_freeze(before)
    planned = [
        (normalize(item['metadata']['name']), item['metadata']['version'])
        for item in json.loads(Path(report).read_text())['install']
    ]
    changed = [f'{n} {v}' for n, v in planned if n in installed]
    extra = [f'{n} {v}' for n, v in planned if n not in installed]
    extra = [e for e in extra if not e.startswith('mmcam-ext ')]
    if changed or extra or not planned:
        print(
            'dry-run: FAIL: pip would change '
            f'{changed or "nothing"} and add {extra or "nothing"} '
            f'(planned: {planned})'
        )
        return 1
    print(
        f'dry-run: ok, pip would install only {planned[0][0]} {planned[0][1]}'
    )
    return 0


def freeze_diff(
    before: str, after: str, allowed: List[str], any_new: bool
) -> int:
    """Compare two freezes: nothing changed or removed, new ones allowed."""
    old, new = read_freeze(before), read_freeze(after)
    changed = [
        f'{old[n]} -> {new[n]}' for n in old if n in new and old[n] != new[n]
    ]
    removed = [old[n] for n in old if n not in new]
    added = sorted(new[n] for n in new if n not in old)
    allowed_set = {normalize(a) for a in allowed}
    unexpected = [
        a
        for a in added
        if not any_new
        and normalize(re.split(r'==| @ ', a, maxsplit=1)[0]) not in allowed_set
    ]
    if changed or removed or unexpected:
        print(
            f'freeze-diff: FAIL: changed {changed}, removed {removed}, '
            f'unexpected new {unexpected}'
        )
        return 1
    print(f'freeze-diff: ok, nothing changed or removed; new: {added}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command (see the module docstring).

    Args:
        argv (list[str], optional): Arguments. Defaults to ``sys.argv[1:]``.

    Returns:
        int: 0 when the check passes.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('export')
    p.add_argument('root')
    p.add_argument('dest')
    p = sub.add_parser('dry-run')
    p.add_argument('report')
    p.add_argument('before')
    p = sub.add_parser('freeze-diff')
    p.add_argument('before')
    p.add_argument('after')
    p.add_argument('--new', nargs='*', default=[])
    p.add_argument('--any-new', action='store_true')
    args = parser.parse_args(argv)
    if args.command == 'export':
        return export(args.root, args.dest)
    if args.command == 'dry-run':
        return dry_run(args.report, args.before)
    return freeze_diff(args.before, args.after, args.new, args.any_new)


if __name__ == '__main__':
    sys.exit(main())

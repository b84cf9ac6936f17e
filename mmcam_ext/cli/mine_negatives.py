"""``mine_negatives``: pool images that look like each error pattern.

``python tools/mine_negatives.py PATTERNS_DIR POOL_DUMP_DIR --label NEG``
(also ``mmcam-mine``, ``python -m mmcam_ext mine``). The pool is a dump of
unlabelled images explained with the same model and method, for the
pattern's class: ``tools/vis_cam.py POOL_FOLDER CONFIG CKPT --save-raw
--target-category CLASS --out-dir POOL_DUMP_DIR`` (or the hook on a
dataset). Writes ``PATTERNS_DIR/mined/`` (or ``--out-dir``):
``negatives.json``, ``negatives.txt`` (``path label`` lines, MMPretrain's
``CustomDataset`` ann_file) and ``mined.html``.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from mmcam_ext.analysis import MineOptions, annotation_lines, mine_negatives
from mmcam_ext.errors import InputError, MMCamError
from mmcam_ext.visualization.patterns_page import write_mined

from .checks import check_output_dir, ensure_dir, int_at_least
from .messages import cli_message, quiet_known_warnings, report

__all__ = ['parse_args', 'run', 'main']

PROG = 'mine_negatives.py'
EXIT_OK, EXIT_USAGE = 0, 2
MINE_FLAGS = {'per_pattern': '--per-pattern', 'score_weight': '--score-weight'}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of ``mine_negatives``.

    Args:
        argv (list[str], optional): Arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    p.add_argument('patterns_dir', help='the folder of patterns.json')
    p.add_argument('pool_dir', help='the pool dump folder')
    p.add_argument(
        '--label',
        type=int,
        default=0,
        help='class index of the negatives in the annotation file',
    )
    p.add_argument('--per-pattern', type=int_at_least(1), default=50)
    p.add_argument('--patterns', nargs='+', type=int, metavar='ID')
    p.add_argument('--score-weight', type=float, default=0.0)
    p.add_argument('--out-dir', help='default: PATTERNS_DIR/mined')
    return p.parse_args(argv)


def _read_patterns(folder: Path) -> dict:
    path = folder / 'patterns.json'
    if not path.is_file():
        raise InputError(
            f'{path} does not exist: run find_patterns.py on the dump first '
            '(it writes DUMP_DIR/patterns/patterns.json).'
        )
    doc = json.loads(path.read_text())
    if 'signature' not in doc or 'patterns' not in doc:
        raise InputError(f'{path} was not written by find_patterns.py.')
    return doc


def run(args: argparse.Namespace) -> int:
    """Mine, write the files and print where they are.

    Args:
        args (argparse.Namespace): From :func:`parse_args`.

    Returns:
        int: 0.
    """
    folder, pool = Path(args.patterns_dir), Path(args.pool_dir)
    doc = _read_patterns(folder)
    if not pool.is_dir():
        raise InputError(f'Pool dump folder {pool} does not exist.')
    out = Path(args.out_dir or folder / 'mined')
    check_output_dir(str(out))
    opts = MineOptions(args.per_pattern, args.patterns, args.score_weight)
    mined = mine_negatives(doc, pool, opts)
    lines = annotation_lines(mined, args.label)
    ensure_dir(str(out))
    paths = write_mined(out, mined, lines, pool)
    for pat in mined['patterns']:
        print(f'pattern {pat["id"]}: {len(pat["images"])} images')
    print(f'{len(lines)} negatives in {paths[1]}; review {paths[2]}')
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        int: 0, or 2 for a user's mistake (one line on stderr).
    """
    quiet_known_warnings()
    args = parse_args(argv)
    try:
        return run(args)
    except MMCamError as err:
        report(PROG, 'error', cli_message(err, MINE_FLAGS, {}))
        return EXIT_USAGE


if __name__ == '__main__':
    sys.exit(main())

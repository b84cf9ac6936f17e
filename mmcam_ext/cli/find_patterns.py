"""``find_patterns``: group a dump's mistakes into error patterns.

``python tools/find_patterns.py DUMP_DIR [--classes NAME_OR_INDEX ...]``
(also ``mmcam-patterns``, ``python -m mmcam_ext patterns``) reads a dump
of ``CAMVisualizationHook`` with descriptors, groups the mistakes per class
and writes ``DUMP_DIR/patterns/`` (or ``--out-dir``): ``patterns.json``,
``patterns.csv``, ``patterns.html`` and its images; the dump's gallery and
false-positive report get a link to the page.
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from mmcam_ext.analysis import ERROR_KINDS, PatternOptions, discover_patterns
from mmcam_ext.analysis.clustering import require_sklearn
from mmcam_ext.errors import InputError, MMCamError
from mmcam_ext.visualization.patterns_page import link_patterns, write_patterns

from .checks import check_output_dir, class_arg, ensure_dir, int_at_least
from .messages import cli_message, quiet_known_warnings, report

__all__ = ['parse_args', 'run', 'main', 'PATTERN_FLAGS']

PROG = 'find_patterns.py'
EXIT_OK, EXIT_USAGE = 0, 2
#: API names of :class:`PatternOptions` as this tool's flags.
PATTERN_FLAGS = {
    'max_patterns': '--max-patterns',
    'min_size': '--min-size',
    'layout_weight': '--layout-weight',
    'errors': '--errors',
    'method=...': '--method',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of ``find_patterns``.

    Args:
        argv (list[str], optional): Arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    p.add_argument('dump_dir', help='a dump folder with descriptors')
    p.add_argument(
        '--classes',
        nargs='+',
        type=class_arg,
        metavar='NAME_OR_INDEX',
        help='classes whose mistakes are grouped (default: all with some)',
    )
    p.add_argument(
        '--errors',
        choices=ERROR_KINDS,
        default='fp',
        help='fp: predicted the class wrongly; fn: missed it; all: both',
    )
    p.add_argument('--method', help='CAM method (default: the first)')
    p.add_argument('--max-patterns', type=int_at_least(2), default=8)
    p.add_argument('--min-size', type=int_at_least(1), default=3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--layout-weight',
        type=float,
        default=0.0,
        help='weight of where the evidence lies (0: only what it is)',
    )
    p.add_argument('--out-dir', help='default: DUMP_DIR/patterns')
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Find, write and link the patterns of one dump.

    Args:
        args (argparse.Namespace): From :func:`parse_args`.

    Returns:
        int: 0.
    """
    dump = Path(args.dump_dir)
    if not dump.is_dir():
        raise InputError(f'Dump folder {dump} does not exist.')
    require_sklearn()
    out = Path(args.out_dir or dump / 'patterns')
    check_output_dir(str(out))
    opts = PatternOptions(
        classes=args.classes,
        errors=args.errors,
        method=args.method,
        max_patterns=args.max_patterns,
        min_size=args.min_size,
        seed=args.seed,
        layout_weight=args.layout_weight,
    )
    doc = discover_patterns(dump, opts)
    ensure_dir(str(out))
    paths = write_patterns(out, doc, dump)
    if out.resolve() == (dump / 'patterns').resolve():
        link_patterns(dump)
    for entry in doc['classes']:
        text = entry.get('skipped') or (
            f'{len(entry["patterns"])} patterns, '
            f'{entry["other"]["size"]} other'
        )
        print(f'class {entry["name"]}: {entry["mistakes"]} mistakes; {text}')
    print(f'{len(doc["patterns"])} patterns: {paths[2]}')
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
        report(PROG, 'error', cli_message(err, PATTERN_FLAGS, {}))
        return EXIT_USAGE


if __name__ == '__main__':
    sys.exit(main())

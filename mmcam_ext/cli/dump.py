"""``dump``: work on a dump folder.

``python -m mmcam_ext dump finish DUMP_DIR`` builds the index
(``index.json``), gallery and report of a dump whose run was killed (the
hook's evaluation, or ``tools/vis_cam.py --save-raw``) from the rows its
streaming index committed, and says which samples are missing.
``python -m mmcam_ext dump info DUMP_DIR`` says what a dump holds.
"""

import argparse
import sys
import warnings
from typing import List, Optional

from mmcam_ext.errors import MMCamError
from mmcam_ext.fileio import CAMDump
from mmcam_ext.visualization.dump_tables import finish_dump

from .messages import cli_message, quiet_known_warnings, report

__all__ = ['parse_args', 'main']

PROG = 'python -m mmcam_ext dump'
EXIT_OK, EXIT_USAGE = 0, 2
#: Missing samples listed on the terminal at most (all are in index.json).
SHOWN = 20


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of ``dump``.

    Args:
        argv (list[str], optional): Arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='action', required=True)
    fin = sub.add_parser(
        'finish',
        help='write the index, gallery and report of a partial dump',
    )
    fin.add_argument('dump_dir', help='the dump folder of a killed run')
    fin.add_argument(
        '--index-format',
        choices=('json', 'csv'),
        default='json',
        help='format of the index written (default json)',
    )
    info = sub.add_parser('info', help='what a dump holds')
    info.add_argument('dump_dir', help='a dump folder')
    return p.parse_args(argv)


def _missing_text(missing: List[int]) -> str:
    shown = ', '.join(map(str, missing[:SHOWN]))
    more = f' and {len(missing) - SHOWN} more' if len(missing) > SHOWN else ''
    return f'{shown}{more}'


def _finish(args) -> int:
    done = finish_dump(args.dump_dir, args.index_format)
    print(
        f'Finished {args.dump_dir}: {done.samples} sample(s), {done.rows} '
        f'row(s) in {done.index}; gallery index.html, report '
        'false_positives.html.'
    )
    if done.torn:
        print(f'{done.torn} row(s) with a torn map were left out.')
    if done.expected is None:
        print(
            'The run did not record which samples it would explain '
            '(filters or a cap under DDP): missing samples are unknown.'
        )
    elif done.missing:
        print(
            f'{len(done.missing)} of {done.expected} expected sample(s) '
            f'missing (index.json "missing"): {_missing_text(done.missing)}'
        )
    else:
        print(f'All {done.expected} expected samples are there.')
    return EXIT_OK


def _info(args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        dump = CAMDump(args.dump_dir)
    samples = len({r['dataset_index'] for r in dump.rows})
    methods = sorted({r['method'] for r in dump.rows})
    state = 'partial' if dump.partial else 'finished'
    print(
        f'{args.dump_dir}: {state} dump, {samples} sample(s), '
        f'{len(dump.rows)} row(s), methods {methods}'
    )
    if dump.missing:
        print(f'missing: {_missing_text(dump.missing)}')
    if dump.torn:
        print(f'{dump.torn} row(s) with a torn map left out')
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``dump``.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: 0, or 2 for a user's mistake (one line on stderr).
    """
    quiet_known_warnings()
    args = parse_args(argv)
    try:
        return _finish(args) if args.action == 'finish' else _info(args)
    except MMCamError as err:
        report('dump', 'error', cli_message(err))
        return EXIT_USAGE


if __name__ == '__main__':
    sys.exit(main())

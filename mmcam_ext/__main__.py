"""``python -m mmcam_ext {vis_cam,demo,patterns,mine,dump,config} ...``.

The same commands as the console scripts ``mmcam-vis-cam``,
``mmcam-demo``, ``mmcam-patterns`` and ``mmcam-mine`` (and as ``mim run
mmcam_ext vis_cam|demo``); ``config`` prints the absolute path of one of
the plugin's configs (or lists them), for a ``_base_`` or a command line;
``dump finish DIR`` writes the index, gallery and report of a dump whose run
was killed.
"""

import sys
from typing import Callable, Dict, List, Optional

USAGE = (
    'usage: python -m mmcam_ext {vis_cam,demo,patterns,mine,dump,config} '
    '[args ...]\n\n'
    '  vis_cam  CAMs of an MMPretrain classifier (= mmcam-vis-cam)\n'
    '  demo     the real-weights demo (= mmcam-demo; needs mmcam_ext[demo])\n'
    "  patterns group a dump's mistakes into patterns (= mmcam-patterns)\n"
    '  mine     pool images like each pattern (= mmcam-mine)\n'
    '  dump     finish DIR: index, gallery, report of a killed run\n'
    '  config   [NAME] absolute path of a plugin config; no NAME: list them\n'
    '\n"python -m mmcam_ext COMMAND -h" explains a command.'
)


def _vis_cam(argv: List[str]) -> int:
    from .cli.vis_cam import main

    return main(argv)


def _demo(argv: List[str]) -> int:
    from .cli.demo import main

    return main(argv)


def _patterns(argv: List[str]) -> int:
    from .cli.find_patterns import main

    return main(argv)


def _mine(argv: List[str]) -> int:
    from .cli.mine_negatives import main

    return main(argv)


def _dump(argv: List[str]) -> int:
    from .cli.dump import main

    return main(argv)


def _config(argv: List[str]) -> int:
    from .errors import ConfigError
    from .utils.config import config_path, list_configs

    if not argv or argv[0] in ('-h', '--help'):
        print('\n'.join(list_configs()) if not argv else USAGE)
        return 0
    try:
        print(config_path(argv[0]))
    except ConfigError as err:
        print(f'mmcam_ext config: error: {err}', file=sys.stderr)
        return 2
    return 0


COMMANDS: Dict[str, Callable[[List[str]], int]] = {
    'vis_cam': _vis_cam,
    'demo': _demo,
    'patterns': _patterns,
    'mine': _mine,
    'dump': _dump,
    'config': _config,
}


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command.

    Args:
        argv (list[str], optional): Command and its arguments. Defaults to
            ``sys.argv[1:]``.

    Returns:
        int: The exit status (2 for an unknown command).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    from .cli.messages import quiet_known_warnings

    quiet_known_warnings()
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0].replace('-', '_'))
    if command is None:
        print(
            f'python -m mmcam_ext: unknown command {argv[0]!r}; choose '
            f'from {", ".join(COMMANDS)}.\n\n{USAGE}',
            file=sys.stderr,
        )
        return 2
    return command(argv[1:])


if __name__ == '__main__':
    sys.exit(main())

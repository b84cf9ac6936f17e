"""Rank a pool dump for negatives that look like each error pattern.

See ``mmcam_ext.cli.mine_negatives``:
``python tools/mine_negatives.py PATTERNS_DIR POOL_DUMP_DIR --label NEG``.
"""

import sys

from mmcam_ext.cli.mine_negatives import main

if __name__ == '__main__':
    sys.exit(main())

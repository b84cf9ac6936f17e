"""Rank a pool dump for negatives that look like each error pattern (see mmcam_ext.cli.mine_negatives)."""

import sys

from mmcam_ext.cli.mine_negatives import main

if __name__ == '__main__':
    sys.exit(main())

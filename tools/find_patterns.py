"""Group the mistakes of a CAM dump into error patterns.

See ``mmcam_ext.cli.find_patterns``:
``python tools/find_patterns.py DUMP_DIR [--classes NAME_OR_INDEX ...]``.
"""

import sys

from mmcam_ext.cli.find_patterns import main

if __name__ == '__main__':
    sys.exit(main())

"""Group the mistakes of a CAM dump into error patterns (see mmcam_ext.cli.find_patterns)."""

import sys

from mmcam_ext.cli.find_patterns import main

if __name__ == '__main__':
    sys.exit(main())

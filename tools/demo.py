"""The main job on the bundled demo (see ``mmcam_ext.cli.demo``)."""

import sys

from mmcam_ext.cli.demo import main

if __name__ == '__main__':
    sys.exit(main())

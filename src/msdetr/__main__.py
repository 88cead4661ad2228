import sys

from msdetr.cli import main

sys.exit(main())

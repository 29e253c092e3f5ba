import sys

from replayvm.cli import main

sys.exit(main())

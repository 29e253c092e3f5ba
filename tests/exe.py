"""How tests run the installed `replayvm` command (the console script, else `python -m replayvm`)."""

import shutil
import sys

EXE = [shutil.which("replayvm")] if shutil.which("replayvm") else [sys.executable, "-m", "replayvm"]

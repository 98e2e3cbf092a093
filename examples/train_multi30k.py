"""Train, evaluate and save a German->English SimpleS2S on Multi30k: `python examples/train_multi30k.py --help`.

The same as the `simple-s2s-train` command; the script itself is `hf_simple_s2s/training/main.py`, so that the installed
command and this example cannot drift apart.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from hf_simple_s2s.training.main import main  # noqa: E402

if __name__ == "__main__":
    main()

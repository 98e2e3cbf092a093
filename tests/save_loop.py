"""Save two different models into one folder, alternately and forever, until killed (see test_reliability_saving)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_model  # noqa: E402

from hf_simple_s2s.training.checkpoints import save_pretrained_atomically  # noqa: E402

LARGER = dict(hidden_size=192, embedding_size=96)  # a few MB, so that a kill often lands mid-save


def main(folder: str) -> None:
    models = [tiny_model(seed=seed, **LARGER) for seed in (0, 1)]
    saves = 0
    while True:
        save_pretrained_atomically(models[saves % 2], folder)
        saves += 1
        if saves == 2:
            Path(folder, "READY").write_text("both models saved once")


if __name__ == "__main__":
    main(sys.argv[1])

"""The folder of a Hugging Face Space (Gradio) that serves a pushed model with this package's page.

The Space holds a three-line `app.py` that runs `hf_simple_s2s.space.app` on the model's Hub name, a `README.md`
with the Space's front matter (`sdk: gradio`), a `requirements.txt` naming this package, and the example sentences.
"""

from collections.abc import Sequence
from pathlib import Path

import gradio
from huggingface_hub import SpaceCard, SpaceCardData

from hf_simple_s2s.space.app import SHIPPED_EXAMPLES, read_examples

REQUIREMENT = "hf_simple_s2s[space]"  # this package with the page's dependencies (gradio, plotly)

APP_TEMPLATE = '''"""The Space of {model_id}: `python app.py` serves it; `python app.py MODEL_DIR_OR_HUB_NAME` serves another."""

from pathlib import Path

from hf_simple_s2s.space.app import main

if __name__ == "__main__":
    main(default_model={model_id!r}, default_examples=Path(__file__).with_name("examples.txt"))
'''


def write_space(
    space_dir: str | Path,
    model_id: str,
    title: str | None = None,
    requirement: str = REQUIREMENT,
    examples: Sequence[str] | None = None,
) -> Path:
    """Write a Space folder that serves the model `model_id` (a Hub name); returns the folder.

    Args:
        requirement: the line of `requirements.txt` that installs this package, e.g. `hf_simple_s2s[space] @
            git+https://...` where the package is not on the package index the Space installs from.
        examples: the example sentences of the page (default: the first 10 of the shipped Multi30k test set).
    """
    if "/" not in model_id:
        raise ValueError(f"model_id must be a Hub name 'owner/name', got {model_id!r}")
    if "\n" in requirement or not requirement.strip():
        raise ValueError(f"requirement must be one requirement line, got {requirement!r}")
    examples = read_examples(SHIPPED_EXAMPLES) if examples is None else list(examples)
    if any("\n" in example or "\r" in example for example in examples):  # where `read_examples` splits lines
        raise ValueError("examples must be single lines, got one with a line break")
    title = title or f"SimpleS2S: {model_id}"
    space_dir = Path(space_dir)
    space_dir.mkdir(parents=True, exist_ok=True)

    (space_dir / "app.py").write_text(APP_TEMPLATE.format(model_id=model_id), encoding="utf-8")
    (space_dir / "requirements.txt").write_text(requirement + "\n", encoding="utf-8")
    (space_dir / "examples.txt").write_text("".join(f"{example}\n" for example in examples), encoding="utf-8")
    card_data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=gradio.__version__,  # the version this page was written and tested with
        app_file="app.py",
        models=[model_id],
        license="apache-2.0",
        emoji="🔤",
        colorFrom="blue",
        colorTo="green",
        short_description="Translate and see the attention of each output token",
    )
    body = (
        f"# {title}\n\nTranslate with [{model_id}](https://huggingface.co/{model_id}), a GRU encoder-decoder with "
        "attention, and see which source tokens each output token attended to.\n\n"
        "Run it locally: `pip install -r requirements.txt && python app.py`.\n"
    )
    SpaceCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}").save(space_dir / "README.md")
    return space_dir


__all__ = ["REQUIREMENT", "write_space"]

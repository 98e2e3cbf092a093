"""README's quick start runs as written, and what it saves reloads to the same beams."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start_code() -> str:
    text = README.read_text()
    section = text[text.index("## Quick start") : text.index("\n## ", text.index("## Quick start") + 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]


def test_quick_start_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(quick_start_code(), "README.md (Quick start)", "exec"), namespace)
    assert (tmp_path / "my-model" / "model.safetensors").is_file()
    reloaded, input_ids, mask = namespace["reloaded"], namespace["input_ids"], namespace["attention_mask"]
    again = reloaded.generate(input_ids, attention_mask=mask, num_beams=5, max_new_tokens=20)
    assert torch.equal(again, namespace["beams"])

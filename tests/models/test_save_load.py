"""Saving and loading: Auto classes, safetensors only, remote code in a fresh process (the Hub path: test_hub.py)."""

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import ATTENTION_TYPES, padded_batch, tiny_model
from hub_utils import run_fresh_python
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration, SimpleS2SModel

SOURCES = [[5, 9, 14, 22, 7, 2], [31, 12, 2], [8, 8, 19, 25, 2]]
GEN = dict(max_new_tokens=8, num_beams=3)
REPO_ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter where the package is unimportable, so only the code saved with the model can load it.
LOAD_WITHOUT_PACKAGE = """
import json
import torch
from transformers import AutoModel, AutoModelForSeq2SeqLM
spec = json.load(open("spec.json"))
model = AutoModelForSeq2SeqLM.from_pretrained("model", trust_remote_code=True)
base = AutoModel.from_pretrained("model", trust_remote_code=True)
ids, mask = torch.tensor(spec["input_ids"]), torch.tensor(spec["attention_mask"])
out = model.generate(ids, attention_mask=mask, **spec["gen"])
print(json.dumps({"sequences": out.tolist(), "module": type(model).__module__, "base": type(base).__name__}))
"""


def write_spec(path: Path, input_ids, attention_mask) -> Path:
    spec = {"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(), "gen": GEN}
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_auto_classes_reload_and_reproduce_generate(tmp_path, attention_type):
    model = tiny_model(attention_type=attention_type, initializer_range=0.5)
    input_ids, attention_mask = padded_batch(SOURCES, side="left")
    expected = model.generate(input_ids, attention_mask=attention_mask, **GEN)
    model.save_pretrained(tmp_path)

    assert isinstance(AutoConfig.from_pretrained(tmp_path), SimpleS2SConfig)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert type(reloaded) is SimpleS2SForConditionalGeneration
    assert torch.equal(reloaded.generate(input_ids, attention_mask=attention_mask, **GEN), expected)
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is SimpleS2SModel
    torch.testing.assert_close(base.decoder.gru.weight_ih_l0, model.model.decoder.gru.weight_ih_l0)


def test_saved_folder_holds_safetensors_code_and_auto_map(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [  # exactly the two model files travel as code
        "config.json",
        "configuration_simple_s2s.py",
        "generation_config.json",
        "model.safetensors",
        "modeling_simple_s2s.py",
    ]
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_simple_s2s.SimpleS2SConfig",
        "AutoModel": "modeling_simple_s2s.SimpleS2SModel",
        "AutoModelForSeq2SeqLM": "modeling_simple_s2s.SimpleS2SForConditionalGeneration",
    }
    # The travelling code imports nothing from this package, only transformers, torch and its sibling file.
    for name in ("configuration_simple_s2s.py", "modeling_simple_s2s.py"):
        code = (tmp_path / name).read_text()
        imported = re.findall(r"^(?:from|import) ([\w.]+)", code, flags=re.MULTILINE)
        assert {module.split(".")[0] for module in imported} <= {
            "",
            "dataclasses",
            "hashlib",
            "huggingface_hub",
            "json",
            "os",
            "re",
            "shutil",
            "tempfile",
            "torch",
            "transformers",
            "typing",
        }, imported


def test_remote_code_loads_in_a_process_without_the_package(tmp_path):
    model = tiny_model(attention_type="luong_general", initializer_range=0.5)
    input_ids, attention_mask = padded_batch(SOURCES)
    expected = model.generate(input_ids, attention_mask=attention_mask, **GEN)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    write_spec(tmp_path / "spec.json", input_ids, attention_mask)

    result = run_fresh_python(LOAD_WITHOUT_PACKAGE, tmp_path, package_importable=False)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("transformers_modules"), loaded["module"]
    assert loaded["base"] == "SimpleS2SModel"
    assert loaded["sequences"] == expected.tolist()

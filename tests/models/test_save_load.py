"""Saving and loading: Auto classes and safetensors (by name from the Hub, and remote code in a fresh process without
the package: test_hub.py)."""

import json
import re

import pytest
import torch
from conftest import ATTENTION_TYPES, padded_batch, peaky_model, seeded_generator, tiny_model
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration, SimpleS2SModel

SOURCES = [[5, 9, 14, 22, 7, 2], [31, 12, 2], [8, 8, 19, 25, 2]]
GEN = dict(max_new_tokens=8, num_beams=3)


@pytest.mark.parametrize("coverage", [False, True], ids=["plain", "coverage"])
@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_auto_classes_reload_and_reproduce_generate_and_loss(tmp_path, attention_type, coverage):
    overrides = dict(coverage=True, coverage_loss_weight=0.5) if coverage else {}
    model = peaky_model(attention_type=attention_type, **overrides)
    input_ids, attention_mask = padded_batch(SOURCES, side="left")
    labels = torch.randint(4, 40, (3, 5), generator=seeded_generator(4))
    expected = model.generate(input_ids, attention_mask=attention_mask, **GEN)
    model.save_pretrained(tmp_path)

    assert isinstance(AutoConfig.from_pretrained(tmp_path), SimpleS2SConfig)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert type(reloaded) is SimpleS2SForConditionalGeneration
    assert (reloaded.config.coverage, reloaded.config.coverage_loss_weight) == (coverage, 0.5 if coverage else 0.0)
    assert torch.equal(reloaded.generate(input_ids, attention_mask=attention_mask, **GEN), expected)
    got, wanted = (m(input_ids, attention_mask, labels=labels) for m in (reloaded, model))
    torch.testing.assert_close(got.logits, wanted.logits)
    torch.testing.assert_close(got.loss, wanted.loss)  # with coverage, the coverage loss with its weight
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


@pytest.mark.parametrize("dropped", ["one tensor", "every tensor"])
def test_weights_that_lack_tensors_are_refused_naming_the_folder_and_keys(tmp_path, dropped):
    """transformers would load random weights in their place with a warning; the model refuses them in one line."""
    from safetensors.torch import load_file, save_file

    tiny_model().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    kept = {k: v for k, v in weights.items() if k != "model.decoder.bridge.bias"} if dropped == "one tensor" else {}
    save_file(kept, tmp_path / "model.safetensors", metadata={"format": "pt"})
    for auto_class in (AutoModelForSeq2SeqLM, AutoModel):
        with pytest.raises(ValueError, match=rf"weights of {re.escape(str(tmp_path))} lack .*decoder\.bridge\.bias"):
            auto_class.from_pretrained(tmp_path)
    # As in transformers: loaded with random weights in their place when the caller asks to see what is missing
    model, loading_info = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, output_loading_info=True)
    assert "model.decoder.bridge.bias" in loading_info["missing_keys"]


def test_a_base_model_checkpoint_still_loads_under_the_head(tmp_path):
    """The head is new there, as transformers allows; every base weight is loaded."""
    model = tiny_model()
    model.model.save_pretrained(tmp_path)
    reloaded = SimpleS2SForConditionalGeneration.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.model.encoder.gru.weight_ih_l0, model.model.encoder.gru.weight_ih_l0)


def test_weights_passed_in_memory_may_lack_tensors():
    """transformers' own tests initialise every weight this way (`test_can_init_all_missing_weights`)."""
    model = tiny_model()
    loaded = SimpleS2SForConditionalGeneration.from_pretrained(None, config=model.config, state_dict={})
    assert type(loaded) is SimpleS2SForConditionalGeneration


def test_save_pretrained_to_a_file_is_refused(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("")
    with pytest.raises(ValueError, match="`save_directory` .*a_file' is a file"):
        tiny_model().save_pretrained(path)

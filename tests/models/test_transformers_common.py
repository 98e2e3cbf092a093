"""transformers' own common model tests (`ModelTesterMixin`, `GenerationTesterMixin`, `ConfigTester`) on SimpleS2S.

They are not in the transformers wheel, so this file runs only where `TRANSFORMERS_TESTS_DIR` names a folder
holding transformers' `tests/` package: `tests/test_modeling_common.py` and `tests/test_configuration_common.py`
from the sdist of the installed version (`pip download transformers==<version> --no-binary :all: --no-deps`),
`tests/generation/`, `tests/exporters/`, `tests/utils/` and `utils/test_module/` from a checkout of transformers'
repository. See "transformers' common tests" in README.md. Each test skipped here says why in one line.
"""

import os
import sys
import unittest

import pytest

TESTS_DIR = os.environ.get("TRANSFORMERS_TESTS_DIR")
if not TESTS_DIR or not os.path.isfile(os.path.join(TESTS_DIR, "tests", "test_modeling_common.py")):
    pytest.skip(
        "TRANSFORMERS_TESTS_DIR does not name transformers' tests (see the module docstring)", allow_module_level=True
    )
sys.path.insert(0, TESTS_DIR)

import torch  # noqa: E402
from tests.generation.test_utils import GenerationTesterMixin  # noqa: E402
from tests.test_configuration_common import ConfigTester  # noqa: E402
from tests.test_modeling_common import ModelTesterMixin, ids_tensor  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration, SimpleS2SModel  # noqa: E402

# The configurations the tests run on: each attention type, coverage, shared untied embeddings, stacked layers.
CONFIGURATIONS = {
    "Bahdanau": {},
    "LuongDot": {"attention_type": "luong_dot"},
    "LuongGeneral": {"attention_type": "luong_general"},
    "Coverage": {"coverage": True, "coverage_loss_weight": 0.5},
    "SharedUntied": {"share_embeddings": True, "tie_word_embeddings": False},
    "TwoLayers": {"encoder_layers": 2, "decoder_layers": 2, "attention_type": "luong_general"},
}

# One line each: why a common test does not apply to a recurrent encoder-decoder without self-attention.
NOT_APPLICABLE = {
    "test_attention_outputs": "no self-attention: encoder_attentions and decoder_attentions do not exist",
    "test_recurrent_layers_mask_padding_on_continued_forward": "written for decoder-only models (feeds input_ids "
    "as the recurrent sequence)",
}


class SimpleS2SModelTester:
    def __init__(self, parent, batch_size=13, seq_length=7, vocab_size=99, hidden_size=16, **config_overrides):
        self.parent = parent
        self.batch_size, self.seq_length, self.encoder_seq_length = batch_size, seq_length, seq_length
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.is_training = True
        self.num_attention_heads = 1  # the cross-attention output has one head
        self.config_overrides = config_overrides
        self.num_hidden_layers = self.get_config().decoder_layers
        self.pad_token_id, self.bos_token_id, self.eos_token_id, self.decoder_start_token_id = 1, 0, 2, 3

    def get_config(self) -> SimpleS2SConfig:
        values = dict(
            vocab_size=self.vocab_size,
            embedding_size=self.hidden_size,
            hidden_size=self.hidden_size,
            dropout=0.1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=3,
        )
        return SimpleS2SConfig(**{**values, **self.config_overrides})

    def prepare_config_and_inputs_for_common(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
        input_ids[:, -1] = self.eos_token_id
        decoder_input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        inputs = {
            "input_ids": input_ids,
            "attention_mask": input_ids.ne(self.pad_token_id),
            "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": torch.ones_like(decoder_input_ids),
        }
        return self.get_config(), inputs


@pytest.fixture(autouse=True, scope="module")
def known_to_transformers_by_name():
    """Several common tests find the base model and the seq2seq head by class name in transformers' own name tables,
    which `AutoModel.register` does not reach; an in-library model is listed there, so list ours while they run."""
    tables = [
        (modeling_auto.MODEL_MAPPING_NAMES, "SimpleS2SModel"),
        (modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES, "SimpleS2SForConditionalGeneration"),
    ]
    for table, class_name in tables:
        table[SimpleS2SConfig.model_type] = class_name
    yield
    for table, _ in tables:
        del table[SimpleS2SConfig.model_type]


class SimpleS2SCommonTests(ModelTesterMixin, GenerationTesterMixin):
    all_model_classes = (SimpleS2SModel, SimpleS2SForConditionalGeneration)
    is_encoder_decoder = True
    has_attentions = False  # no self-attention; the cross-attention is tested in test_modeling_simple_s2s.py
    test_can_init_all_missing_weights_before_2023 = True  # the test keys on a copyright year; run it
    config_overrides: dict = {}

    def setUp(self):
        self.model_tester = SimpleS2SModelTester(self, **self.config_overrides)
        self.config_tester = ConfigTester(
            self,
            config_class=SimpleS2SConfig,
            common_properties=["vocab_size", "hidden_size", "num_hidden_layers"],
            vocab_size=99,
            hidden_size=16,
            **self.config_overrides,
        )
        test_name = self._testMethodName
        if test_name in NOT_APPLICABLE:
            self.skipTest(NOT_APPLICABLE[test_name])
        if test_name == "test_inputs_embeds_matches_input_ids" and not self.model_tester.get_config().share_embeddings:
            self.skipTest("embeds the decoder inputs with the encoder's embedding: equal only with share_embeddings")

    def test_config(self):
        self.config_tester.run_common_tests()

    # The generate() checks below are transformers' own, adapted to this model's layout where their docstrings ask for
    # it ("Please overwrite ..."): encoder layers output both directions, and the cache holds recurrent states.

    def _check_encoder_hidden_states_for_generate(self, hidden_states, batch_size, config, prompt_length):
        expected = [(batch_size, prompt_length, config.embedding_size)]
        expected += [(batch_size, prompt_length, config.encoder_output_size)] * config.encoder_layers
        self.assertListEqual([tuple(h.shape) for h in hidden_states], expected)

    def _check_past_key_values_for_generate(self, batch_size, past_key_values, seq_length, config):
        """Per decoder layer a GRU state `(batch, hidden)`; in layer 0 one row per decoded token (its attention over
        the source) so that the cache counts `seq_length` tokens; nothing for the encoder (no cross-attention cache:
        the attention keys travel with the encoder outputs)."""
        from transformers import EncoderDecoderCache

        self.assertIsInstance(past_key_values, EncoderDecoderCache)
        decoder_part = past_key_values.self_attention_cache
        self.assertEqual(len(decoder_part.layers), config.decoder_layers)
        self.assertEqual(decoder_part.get_seq_length(), seq_length)
        for layer in decoder_part.layers:
            self.assertEqual(tuple(layer.recurrent_states[0].shape), (batch_size, config.hidden_size))
        history = decoder_part.layers[0].keys
        self.assertEqual(tuple(history.shape[:3]), (batch_size, 1, seq_length))
        torch.testing.assert_close(history.sum(-1), torch.ones_like(history.sum(-1)))  # attention rows sum to 1


for _name, _overrides in CONFIGURATIONS.items():
    _class_name = f"Test{_name}"
    globals()[_class_name] = type(
        _class_name, (SimpleS2SCommonTests, unittest.TestCase), {"config_overrides": _overrides}
    )

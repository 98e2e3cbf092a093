"""Model tests in the spirit of transformers' own: shapes, the equivalences on a grid of setups, generate()."""

import pytest
import torch
from conftest import (
    GEN,
    SOURCES,
    VOCAB_SIZE,
    padded_batch,
    peaky_model,
    seeded_generator,
    tiny_config,
    tiny_model,
)
from equivalences import (
    SETUPS,
    assert_batched_generate_equals_one_by_one,
    assert_beam_scores_match_rescoring,
    assert_generate_with_cache_equals_without,
    assert_padding_changes_no_logits,
    assert_stepwise_cache_equals_teacher_forcing,
    ending_at_different_steps,
)
from torch.nn import functional as F
from transformers import DynamicCache, EncoderDecoderCache, GenerationConfig, GenerationMixin, StaticCache
from transformers.generation.streamers import BaseStreamer

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration, SimpleS2SModel
from hf_simple_s2s.models.simple_s2s.modeling_simple_s2s import source_padding_mask


def random_batch(batch_size=3, src_len=7, tgt_len=5, seed=0):
    generator = seeded_generator(seed)
    input_ids = torch.randint(4, VOCAB_SIZE, (batch_size, src_len), generator=generator)
    labels = torch.randint(4, VOCAB_SIZE, (batch_size, tgt_len), generator=generator)
    return input_ids, labels


def decoder_inputs(batch_size: int, tgt_len: int, seed: int = 1) -> torch.Tensor:
    """The start token, then random words: `(batch_size, tgt_len)`."""
    words = torch.randint(4, VOCAB_SIZE, (batch_size, tgt_len - 1), generator=seeded_generator(seed))
    return torch.cat([torch.full((batch_size, 1), GEN["decoder_start_token_id"]), words], dim=1)


class TestForward:
    def test_output_shapes(self, model):
        input_ids, labels = random_batch()
        out = model(input_ids=input_ids, labels=labels, output_attentions=True, output_hidden_states=True)
        config = model.config
        assert out.logits.shape == (3, 5, VOCAB_SIZE)
        assert out.encoder_last_hidden_state.shape == (3, 7, 2 * config.hidden_size)
        assert out.cross_attentions[0].shape == (3, 1, 5, 7)
        assert out.cache is None, (
            "with labels, no cache is built unless asked for (as in transformers' seq2seq models)"
        )
        # One entry for the embeddings, then one per layer (two layers each side in the tiny config).
        assert [h.shape for h in out.decoder_hidden_states] == [(3, 5, 12), (3, 5, 16), (3, 5, 16)]
        assert [h.shape for h in out.encoder_hidden_states] == [(3, 7, 12), (3, 7, 32), (3, 7, 32)]
        cached = model(input_ids=input_ids, labels=labels, use_cache=True).cache
        assert isinstance(cached, EncoderDecoderCache) and cached.get_seq_length() == 5
        states = [layer.recurrent_states[0] for layer in cached.self_attention_cache.layers]
        assert [state.shape for state in states] == [(3, config.hidden_size)] * config.decoder_layers

    def test_output_flags_in_the_config_are_honoured(self, model):
        input_ids, labels = random_batch()
        model.config.output_hidden_states = model.config.output_attentions = True
        out = model(input_ids=input_ids, labels=labels)
        assert len(out.decoder_hidden_states) == len(out.encoder_hidden_states) == 3
        assert out.cross_attentions[0].shape == (3, 1, 5, 7)

    def test_loss_is_token_cross_entropy_ignoring_minus_100(self, model):
        input_ids, labels = random_batch()
        labels[0, 3:] = -100
        labels[2, 1] = -100
        out = model(input_ids=input_ids, labels=labels)
        kept = labels != -100
        expected = F.cross_entropy(out.logits[kept], labels[kept])
        torch.testing.assert_close(out.loss, expected)

    def test_label_smoothing_equals_the_trainers_label_smoother(self, attention_type):
        from transformers.trainer_pt_utils import LabelSmoother

        model = tiny_model(attention_type=attention_type, label_smoothing=0.1)
        input_ids, labels = random_batch()
        labels[0, 3:] = -100
        out = model(input_ids=input_ids, labels=labels)
        expected = LabelSmoother(epsilon=0.1)({"logits": out.logits}, labels)
        torch.testing.assert_close(out.loss, expected)

    def test_labels_are_shifted_behind_the_start_token(self, model):
        input_ids, labels = random_batch()
        from_labels = model(input_ids=input_ids, labels=labels).logits
        decoder_input_ids = torch.cat([torch.full((3, 1), model.config.decoder_start_token_id), labels[:, :-1]], 1)
        explicit = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids).logits
        torch.testing.assert_close(from_labels, explicit)

    def test_tuple_output_matches_dict_output(self, model):
        input_ids, labels = random_batch()
        as_dict = model(input_ids=input_ids, labels=labels, use_cache=False)
        as_tuple = model(input_ids=input_ids, labels=labels, use_cache=False, return_dict=False)
        torch.testing.assert_close(as_tuple[0], as_dict.loss)
        torch.testing.assert_close(as_tuple[1], as_dict.logits)
        assert as_dict.cache is None

    def test_base_model_returns_decoder_output_vectors(self, attention_type):
        torch.manual_seed(0)
        config = tiny_config(attention_type=attention_type)
        base = SimpleS2SModel(config).eval()
        input_ids, labels = random_batch()
        out = base(input_ids=input_ids, decoder_input_ids=labels)
        assert out.last_hidden_state.shape == (3, 5, config.embedding_size)

    def test_gradients_reach_every_parameter(self, attention_type):
        model = tiny_model(attention_type=attention_type).train()
        input_ids, labels = random_batch()
        model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels).loss.backward()
        no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert no_grad == []


class TestCache:
    def test_a_step_costs_the_same_whatever_the_prefix(self, model):
        """The recurrent state does not grow; the cache only keeps one row of attention weights per token (what
        `get_seq_length` counts), and the attention keys travel with the encoder outputs, computed once."""
        input_ids, _ = random_batch()
        encoder_outputs = model.get_encoder()(input_ids)
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=torch.ones((3, 1), dtype=torch.long))
        layers = out.cache.self_attention_cache.layers
        state_shapes = [layer.recurrent_states[0].shape for layer in layers]
        for step in range(2, 7):
            out = model(encoder_outputs=encoder_outputs, decoder_input_ids=torch.full((3, 1), 7), cache=out.cache)
            assert [layer.recurrent_states[0].shape for layer in layers] == state_shapes
            assert out.cache.get_seq_length() == step and layers[0].keys.shape == (3, 1, step, 7)

    @pytest.mark.parametrize("num_beams", [1, 3])
    def test_asking_for_attentions_changes_no_token_or_score(self, attention_type, num_beams):
        model = peaky_model(attention_type=attention_type, coverage=True)
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, num_beams=num_beams, output_scores=True, return_dict_in_generate=True)
        plain = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        full = model.generate(input_ids, attention_mask=attention_mask, output_attentions=True, **kwargs)
        assert torch.equal(plain.sequences, full.sequences)
        assert torch.equal(torch.stack(plain.scores), torch.stack(full.scores))


@pytest.fixture(params=SETUPS, ids=str)
def setup(request):
    return request.param


class HalvingDropout(torch.nn.Module):
    """Dropout made deterministic (a fixed scaling), so that two paths can be compared with it applied."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * 0.5


def ending_early(model) -> dict:
    """GEN, with an eos that ends the rows of SOURCES at different steps."""
    return ending_at_different_steps(model, SOURCES, **GEN)


class TestEquivalences:
    """Each equivalence of the model once, on every setup of the grid: attention type x coverage x layers (two with a
    bidirectional encoder, one with a unidirectional one). The checks that test_devices.py and test_properties.py
    reuse live in `equivalences.py`."""

    def test_stepwise_decoding_with_cache_equals_teacher_forcing(self, setup):
        model = setup.model()
        input_ids, attention_mask = padded_batch(SOURCES, side="left")
        assert_stepwise_cache_equals_teacher_forcing(model, input_ids, attention_mask, decoder_inputs(4, 6))

    def test_cache_in_two_chunks_equals_one_pass(self, setup):
        """The second chunk continues from the first one's cache (for Luong, its whole-sequence pass does)."""
        model, decoder_input_ids = setup.model(), decoder_inputs(4, 6)
        input_ids, attention_mask = padded_batch(SOURCES)
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
        first = model(**inputs, decoder_input_ids=decoder_input_ids[:, :4])
        second = model(**inputs, decoder_input_ids=decoder_input_ids[:, 4:], cache=first.cache)
        full = model(**inputs, decoder_input_ids=decoder_input_ids).logits
        torch.testing.assert_close(torch.cat([first.logits, second.logits], dim=1), full)

    @pytest.mark.parametrize("num_beams", [1, 3])
    def test_generate_with_cache_equals_without(self, setup, num_beams):
        model = setup.model()
        input_ids, attention_mask = padded_batch(SOURCES)
        assert_generate_with_cache_equals_without(model, input_ids, attention_mask, num_beams, **ending_early(model))

    def test_beam_scores_equal_rescoring(self, setup):
        """Proves that beam search reorders the cache: the recurrent state and, with coverage, the attention rows."""
        model = setup.model()
        input_ids, attention_mask = padded_batch(SOURCES)
        assert_beam_scores_match_rescoring(model, input_ids, attention_mask, **ending_early(model))

    @pytest.mark.parametrize("num_beams", [1, 3])
    def test_batched_generate_equals_one_by_one(self, setup, num_beams):
        model = setup.model()
        assert_batched_generate_equals_one_by_one(
            model, SOURCES, num_beams, sides=("right", "left"), **ending_early(model)
        )

    @pytest.mark.parametrize("side", ["right", "left"])
    def test_source_padding_does_not_change_logits(self, setup, side):
        model = setup.model()
        input_ids, attention_mask = padded_batch(SOURCES, side=side)
        assert_padding_changes_no_logits(model, input_ids, attention_mask, decoder_inputs(4, 5))

    def test_an_all_padding_row_changes_nothing_else(self, setup):
        """It does not crash either, and gets finite logits and no attention."""
        model = setup.model()
        input_ids, attention_mask = padded_batch(SOURCES[:3])
        labels = torch.randint(4, VOCAB_SIZE, (3, 4), generator=seeded_generator(1))
        reference = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
        empty_row = torch.zeros_like(input_ids[:1])
        out = model(
            input_ids=torch.cat([input_ids, empty_row]),
            attention_mask=torch.cat([attention_mask, empty_row]),
            labels=torch.cat([labels, labels[:1]]),
            output_attentions=True,
        )
        torch.testing.assert_close(out.logits[:3], reference)
        assert torch.isfinite(out.logits).all()
        assert (out.cross_attentions[0][3] == 0).all()

    @pytest.mark.parametrize("side", ["right", "left"])
    def test_attention_weights_sum_to_one_on_real_tokens_and_are_zero_on_pads(self, setup, side):
        """In teacher forcing and in every step of a beam search."""
        model = setup.model()
        input_ids, attention_mask = padded_batch(SOURCES, side=side)
        teacher_forced = model(input_ids, attention_mask, decoder_inputs(4, 6), output_attentions=True)
        kwargs = dict(ending_early(model), num_beams=2, output_attentions=True, return_dict_in_generate=True)
        generated = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        checked = [(teacher_forced.cross_attentions[0], attention_mask)]  # (batch, 1 head, tgt_len, src_len)
        beam_mask = attention_mask.repeat_interleave(2, dim=0)
        checked += [(step[0], beam_mask) for step in generated.cross_attentions]  # one per token, one per layer
        for weights, mask in checked:
            pads = ~mask[:, None, None, :].bool().expand_as(weights)
            assert (weights[pads] == 0).all()
            torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))

    @pytest.mark.parametrize("setup", [setup for setup in SETUPS if setup.luong_fast_path], ids=str)
    def test_luong_whole_sequence_pass_equals_unrolling_the_step(self, setup):
        """`run_gru_over_sequence` gives every layer's outputs and last states that `step` gives one token at a time,
        with dropout standing as a fixed scaling: both paths apply it in the same places and keep dropout-free
        states."""
        model = setup.model()
        decoder = model.model.decoder
        decoder.dropout = HalvingDropout()
        input_ids, attention_mask = padded_batch(SOURCES, side="left")
        encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask)
        keys, values = encoder_outputs.attention_keys, encoder_outputs.last_hidden_state
        embeds = decoder.dropout(decoder.embed_tokens(decoder_inputs(4, 6)))  # (batch, tgt_len, emb)
        states, _ = decoder.start(encoder_outputs.final_hidden_state, keys)
        layer_outputs, last_states = decoder.run_gru_over_sequence(embeds, states)
        padding_mask = source_padding_mask(attention_mask)
        step_states = []
        for t in range(embeds.shape[1]):
            states, _ = decoder.step(embeds[:, t], states, keys, values, padding_mask, None)
            step_states.append(states)
        for layer, outputs in enumerate(layer_outputs):
            torch.testing.assert_close(torch.stack([s[layer] for s in step_states], dim=1), outputs)
            torch.testing.assert_close(last_states[layer], states[layer])


class TestGenerate:
    def test_greedy_equals_sampling_with_top_k_1(self, attention_type):
        model = peaky_model(attention_type=attention_type)
        input_ids, attention_mask = padded_batch(SOURCES)
        greedy = model.generate(input_ids, attention_mask=attention_mask, **GEN)
        sampled = model.generate(input_ids, attention_mask=attention_mask, do_sample=True, top_k=1, **GEN)
        assert torch.equal(greedy, sampled)

    def test_sampling_is_reproducible_with_a_seed_and_varies_without(self, attention_type):
        model = tiny_model(attention_type=attention_type)  # small weights: flat distributions, real sampling
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, do_sample=True, top_p=0.9, temperature=1.5, num_return_sequences=3)
        torch.manual_seed(123)
        first = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        torch.manual_seed(123)
        second = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        third = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        assert first.shape[0] == 3 * len(SOURCES)
        assert torch.equal(first, second)
        assert not torch.equal(first, third)

    def test_length_controls(self, attention_type):
        model = peaky_model(attention_type=attention_type)
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, max_new_tokens=6)
        longest = model.generate(input_ids, attention_mask=attention_mask, min_new_tokens=6, **kwargs)
        assert longest.shape[1] == 1 + 6
        assert not (longest[:, 1:] == 2).any(), "eos was suppressed until min_new_tokens"

    def test_no_repeat_ngram_size_prevents_repeats(self, attention_type):
        # Copying the start token's embedding everywhere makes an untrained model loop; the processor must stop it.
        model = peaky_model(attention_type=attention_type)
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, max_new_tokens=12, min_new_tokens=12)
        free = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        blocked = model.generate(input_ids, attention_mask=attention_mask, no_repeat_ngram_size=2, **kwargs)

        def repeated_bigrams(row):
            bigrams = list(zip(row[1:-1].tolist(), row[2:].tolist()))
            return len(bigrams) - len(set(bigrams))

        assert sum(repeated_bigrams(row) for row in free) > 0, "the check needs a model that repeats itself"
        assert all(repeated_bigrams(row) == 0 for row in blocked)

    def test_repetition_penalty_lowers_repeats(self, attention_type):
        model = peaky_model(attention_type=attention_type)
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, max_new_tokens=12, min_new_tokens=12)
        free = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        penalised = model.generate(input_ids, attention_mask=attention_mask, repetition_penalty=100.0, **kwargs)

        def repeats(rows):
            return sum(len(row) - len(set(row.tolist())) for row in rows[:, 1:])

        assert repeats(penalised) < repeats(free)

    def test_beam_search_options(self, attention_type):
        model = peaky_model(attention_type=attention_type)
        input_ids, attention_mask = padded_batch(SOURCES)
        out = model.generate(
            input_ids,
            attention_mask=attention_mask,
            num_beams=4,
            num_return_sequences=2,
            length_penalty=0.6,
            early_stopping=True,
            output_scores=True,
            return_dict_in_generate=True,
            **GEN,
        )
        assert out.sequences.shape[0] == 2 * len(SOURCES)
        scores = out.sequences_scores.view(len(SOURCES), 2)
        assert (scores[:, 0] >= scores[:, 1]).all(), "hypotheses come best first"

    def test_streamer_receives_exactly_the_generated_tokens(self, attention_type, word_tokenizer):
        class Collector(BaseStreamer):
            def __init__(self):
                self.tokens = []

            def put(self, value):
                self.tokens.extend(value.flatten().tolist())

            def end(self):
                self.ended = True

        model = peaky_model(attention_type=attention_type)
        collector = Collector()
        input_ids = torch.tensor([SOURCES[0]])
        out = model.generate(input_ids, streamer=collector, **GEN)
        assert collector.tokens == out[0].tolist() and collector.ended

    def test_text_streamer_prints_the_decoded_translation(self, attention_type, word_tokenizer, capsys):
        from transformers import TextStreamer

        model = peaky_model(attention_type=attention_type)
        input_ids = torch.tensor([SOURCES[0]])
        out = model.generate(input_ids, streamer=TextStreamer(word_tokenizer, skip_special_tokens=True), **GEN)
        printed = capsys.readouterr().out.strip()
        assert printed == word_tokenizer.decode(out[0], skip_special_tokens=True).strip()

    def test_generation_config_comes_from_the_model_config(self, model):
        generation_config = GenerationConfig.from_model_config(model.config)
        assert (generation_config.decoder_start_token_id, generation_config.eos_token_id) == (1, 2)
        assert model.generation_config.pad_token_id == 0

    def test_eos_ends_generation(self, attention_type):
        model = peaky_model(attention_type=attention_type)
        input_ids, attention_mask = padded_batch(SOURCES)
        free = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8)
        first_tokens = free[:, 1]
        # Make the first predicted token of every row the eos token: generation must stop right after it.
        forced = model.generate(
            input_ids,
            attention_mask=attention_mask,
            max_new_tokens=8,
            eos_token_id=first_tokens.tolist(),
        )
        assert forced.shape[1] == 2


MALFORMED_INPUT_IDS = {
    "one_dimensional": ([5, 6, 2], torch.long, r"input_ids.*shape.*\(3,\)"),
    "no_rows": (torch.empty(0, 4), torch.long, r"input_ids.*\(0, 4\)"),
    "no_tokens": (torch.empty(2, 0), torch.long, r"input_ids.*\(2, 0\)"),
    "nothing": (torch.empty(0, 0), torch.long, r"input_ids.*\(0, 0\)"),
    "float_ids": ([[5, 6, 2]], torch.float32, "input_ids.*dtype torch.int64 or torch.int32, got torch.float32"),
    "int8_ids": ([[5, 6, 2]], torch.int8, "input_ids.*dtype torch.int64 or torch.int32, got torch.int8"),
    "uint8_ids": ([[5, 6, 2]], torch.uint8, "input_ids.*dtype torch.int64 or torch.int32, got torch.uint8"),
    "id_above_vocabulary": (
        [[5, VOCAB_SIZE + 5, 2]],
        torch.long,
        rf"input_ids.*{VOCAB_SIZE + 5}.*vocab_size={VOCAB_SIZE}",
    ),
    "negative_id": ([[5, -1, 2]], torch.long, r"input_ids.*-1.*vocab_size"),
}


class TestInputErrors:
    @pytest.mark.parametrize("values, dtype, message", MALFORMED_INPUT_IDS.values(), ids=MALFORMED_INPUT_IDS.keys())
    def test_malformed_input_ids_are_refused_by_forward_and_generate(self, values, dtype, message):
        model, input_ids = tiny_model(), torch.as_tensor(values).to(dtype)
        with pytest.raises(ValueError, match=message):
            model(input_ids, decoder_input_ids=torch.ones((1, 1), dtype=torch.long))
        with pytest.raises(ValueError, match=message):
            model.generate(input_ids, max_new_tokens=3)

    def test_negative_decoder_input_id(self, model):
        input_ids, labels = random_batch()
        labels[0, 0] = -7
        with pytest.raises(ValueError, match=r"decoder_input_ids.*-7"):
            model(input_ids=input_ids, decoder_input_ids=labels)

    def test_label_outside_vocabulary(self, model):
        input_ids, labels = random_batch()
        labels[0, 1] = VOCAB_SIZE
        with pytest.raises(ValueError, match=rf"{VOCAB_SIZE}"):
            model(input_ids=input_ids, labels=labels)

    def test_attention_mask_shape_mismatch(self, model):
        input_ids, labels = random_batch()
        with pytest.raises(ValueError, match=r"attention_mask.*\(3, 6\).*\(3, 7\)"):
            model(input_ids=input_ids, attention_mask=torch.ones((3, 6)), labels=labels)

    def test_training_forward_needs_decoder_inputs_or_labels(self, model):
        input_ids, _ = random_batch()
        with pytest.raises(ValueError, match="decoder_input_ids.*labels"):
            model(input_ids=input_ids)

    @pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
    @pytest.mark.parametrize("field", ["last_hidden_state", "final_hidden_state"])
    def test_non_finite_encoder_outputs_are_refused_by_forward_and_generate(self, field, bad_value):
        model = tiny_model()
        encoder_outputs = model.get_encoder()(torch.tensor([[5, 6, 7, 2]]))
        encoder_outputs[field][0, 1] = bad_value
        with pytest.raises(ValueError, match=f"{field}` contains NaN or inf"):
            model(encoder_outputs=encoder_outputs, decoder_input_ids=torch.tensor([[1]]))
        with pytest.raises(ValueError, match=f"{field}` contains NaN or inf"):
            model.generate(encoder_outputs=encoder_outputs, max_new_tokens=3)


class TestWeights:
    def test_tied_output_layer_is_the_decoder_embedding(self):
        model = tiny_model(tie_word_embeddings=True)
        assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
        untied = tiny_model(tie_word_embeddings=False)
        assert untied.lm_head.weight is not untied.model.decoder.embed_tokens.weight

    def test_shared_embeddings(self):
        shared = tiny_model(share_embeddings=True)
        assert shared.model.encoder.embed_tokens.weight is shared.model.decoder.embed_tokens.weight
        separate = tiny_model(share_embeddings=False)
        assert separate.model.encoder.embed_tokens.weight is not separate.model.decoder.embed_tokens.weight

    @pytest.mark.parametrize("tie,share", [(True, True), (True, False), (False, True), (False, False)])
    def test_saved_file_holds_each_tied_weight_once(self, tmp_path, tie, share):
        from safetensors import safe_open

        model = tiny_model(tie_word_embeddings=tie, share_embeddings=share)
        model.save_pretrained(tmp_path)
        with safe_open(tmp_path / "model.safetensors", "pt") as f:
            keys = set(f.keys())
        assert ("lm_head.weight" in keys) == (not tie)
        assert ("model.encoder.embed_tokens.weight" in keys) == (not share)
        reloaded = SimpleS2SForConditionalGeneration.from_pretrained(tmp_path)
        assert (reloaded.lm_head.weight is reloaded.model.decoder.embed_tokens.weight) == tie
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(reloaded.state_dict()[name], tensor, msg=name)

    def test_init_weights_covers_the_gru_and_every_linear(self):
        model = tiny_model(initializer_range=0.05)
        for name, param in model.named_parameters():
            if "bias" in name:
                assert (param == 0).all(), name
            else:
                assert param.abs().max() <= 0.05 and param.std() > 0, name
        assert (model.model.encoder.embed_tokens.weight[0] == 0).all(), "pad embedding starts at zero"

    def test_weights_missing_from_a_checkpoint_are_initialised_not_garbage(self, tmp_path):
        torch.manual_seed(0)
        base = SimpleS2SModel(tiny_config(tie_word_embeddings=False, initializer_range=0.05))
        base.save_pretrained(tmp_path)
        model = SimpleS2SForConditionalGeneration.from_pretrained(tmp_path)  # lm_head is not in the file
        torch.testing.assert_close(model.model.decoder.gru.weight_hh_l0, base.decoder.gru.weight_hh_l0)
        assert model.lm_head.weight.abs().max() <= 0.05 and (model.lm_head.bias == 0).all()


@pytest.mark.parametrize("tie,share", [(True, True), (True, False), (False, True), (False, False)])
def test_resize_token_embeddings_resizes_every_vocabulary_matrix(tie, share):
    model = tiny_model(tie_word_embeddings=tie, share_embeddings=share)
    old_decoder_rows = model.model.decoder.embed_tokens.weight[:VOCAB_SIZE].clone()
    model.resize_token_embeddings(VOCAB_SIZE + 8)
    decoder_embedding = model.model.decoder.embed_tokens.weight
    for matrix in (model.model.encoder.embed_tokens.weight, decoder_embedding, model.lm_head.weight):
        assert matrix.shape[0] == VOCAB_SIZE + 8
    assert model.lm_head.bias.shape == (VOCAB_SIZE + 8,)
    assert model.config.vocab_size == VOCAB_SIZE + 8
    assert (model.lm_head.weight is decoder_embedding) == tie
    assert (model.model.encoder.embed_tokens.weight is decoder_embedding) == share
    torch.testing.assert_close(decoder_embedding[:VOCAB_SIZE], old_decoder_rows)
    new_token = VOCAB_SIZE + 3
    out = model(input_ids=torch.tensor([[new_token, 5, 2]]), labels=torch.tensor([[new_token, 2]]))
    assert out.logits.shape[-1] == VOCAB_SIZE + 8 and torch.isfinite(out.loss)


class TestTransformersContract:
    """What transformers' own tools expect of a model (the defects its common tests found, one test each)."""

    @pytest.mark.parametrize("eos_token_id", [None, [2, 7]])
    def test_special_token_ids_may_be_none_or_a_list(self, eos_token_id):
        config = tiny_config(eos_token_id=eos_token_id, pad_token_id=None, initializer_range=0.5)
        assert SimpleS2SConfig.from_dict(config.to_dict()).eos_token_id == eos_token_id
        model = SimpleS2SForConditionalGeneration(config).eval()
        input_ids, attention_mask = padded_batch(SOURCES)
        free = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, pad_token_id=0)
        if eos_token_id is not None:  # end on the first token of every row: it must stop after one token
            out = model.generate(
                input_ids,
                attention_mask=attention_mask,
                max_new_tokens=8,
                pad_token_id=0,
                eos_token_id=[*eos_token_id, *free[:, 1].tolist()],
            )
            assert out.shape[1] == 2
        with pytest.raises(ValueError, match="eos_token_id.*vocab_size=40.*\\[2, 40\\]"):
            tiny_config(eos_token_id=[2, 40])

    @pytest.mark.parametrize("num_new", [1, 3])
    def test_generation_continues_from_the_returned_cache(self, attention_type, num_new):
        """As transformers defines it: pass the sequences so far, their decoder mask and the returned cache."""
        model = peaky_model(attention_type=attention_type, coverage=attention_type == "bahdanau")
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, min_new_tokens=8, return_dict_in_generate=True, output_scores=True)
        whole = model.generate(input_ids, attention_mask=attention_mask, **{**kwargs, "max_new_tokens": 4 + num_new})
        first = model.generate(input_ids, attention_mask=attention_mask, **{**kwargs, "max_new_tokens": 4})
        rest = model.generate(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=first.sequences,
            decoder_attention_mask=torch.ones_like(first.sequences),
            cache=first.cache,
            **{**kwargs, "max_new_tokens": num_new, "min_new_tokens": num_new},
        )
        assert torch.equal(rest.sequences, whole.sequences)
        torch.testing.assert_close(torch.stack(first.scores + rest.scores), torch.stack(whole.scores))

    def test_a_recurrent_state_cannot_be_cropped(self, model):
        input_ids, _ = random_batch()
        cache = model(input_ids=input_ids, decoder_input_ids=torch.ones((3, 4), dtype=torch.long)).cache
        assert not cache.is_croppable
        with pytest.raises(RuntimeError, match="does not track past states"):
            cache.crop(-1)

    def test_generate_builds_transformers_own_cache(self, attention_type):
        """Which beam search reorders (`TestEquivalences.test_beam_scores_equal_rescoring` proves it does)."""
        model = peaky_model(attention_type=attention_type, coverage=True)
        assert not hasattr(model, "_reorder_cache") and model._supports_default_dynamic_cache()
        assert type(model).prepare_inputs_for_generation is GenerationMixin.prepare_inputs_for_generation
        input_ids, attention_mask = padded_batch(SOURCES[:2])
        out = model.generate(input_ids, attention_mask=attention_mask, return_dict_in_generate=True, **GEN)
        assert type(out.cache.self_attention_cache) is DynamicCache

    @pytest.mark.parametrize("num_beams", [1, 3])
    def test_static_cache_generates_what_the_dynamic_cache_generates(self, attention_type, num_beams):
        model = peaky_model(attention_type=attention_type, coverage=True)
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, num_beams=num_beams, return_dict_in_generate=True, output_scores=True)
        dynamic = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        static = model.generate(input_ids, attention_mask=attention_mask, cache_implementation="static", **kwargs)
        assert isinstance(static.cache.self_attention_cache, StaticCache) and static.cache.is_compileable
        assert torch.equal(static.sequences, dynamic.sequences)
        torch.testing.assert_close(torch.stack(static.scores), torch.stack(dynamic.scores))

    def test_prepare_inputs_for_generation_takes_input_ids_as_transformers_names_it(self, model):
        input_ids, attention_mask = padded_batch(SOURCES)
        prepared = model.prepare_inputs_for_generation(
            input_ids=torch.ones((4, 3), dtype=torch.long), attention_mask=attention_mask, use_cache=False
        )
        assert prepared["decoder_input_ids"].shape == (4, 3) and prepared["attention_mask"] is attention_mask

    def test_the_text_encoder_is_not_an_encoder_of_images(self, model):
        assert model.get_encoder() is model.model.encoder
        assert model.get_encoder(modality="image") is not model.model.encoder

    def test_embeddings_can_be_passed_instead_of_ids(self, attention_type):
        model = tiny_model(attention_type=attention_type)
        input_ids, labels = random_batch()
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
        from_ids = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids)
        from_embeds = model(
            inputs_embeds=model.model.encoder.embed_tokens(input_ids),
            decoder_inputs_embeds=model.model.decoder.embed_tokens(decoder_input_ids),
        )
        torch.testing.assert_close(from_embeds.logits, from_ids.logits)
        with pytest.raises(ValueError, match="exactly one of `input_ids` and `inputs_embeds`"):
            model(input_ids=input_ids, inputs_embeds=model.model.encoder.embed_tokens(input_ids), labels=labels)

    def test_tied_weights_keys_name_only_the_ties_the_config_makes(self):
        assert tiny_model()._tied_weights_keys == {"lm_head.weight": "model.decoder.embed_tokens.weight"}
        assert tiny_model().model._tied_weights_keys == {}
        assert tiny_model(tie_word_embeddings=False, share_embeddings=True).model._tied_weights_keys == {
            "encoder.embed_tokens.weight": "decoder.embed_tokens.weight"
        }
        model = tiny_model()
        model.config.tie_word_embeddings = False  # what the ties follow when the model is saved
        assert model._tied_weights_keys == {}

    def test_cross_attentions_are_on_the_gradient_path(self, attention_type):
        model = tiny_model(attention_type=attention_type).train()
        input_ids, labels = random_batch()
        out = model(input_ids=input_ids, labels=labels, output_attentions=True, output_hidden_states=True)
        retained = [out.cross_attentions[0], out.decoder_hidden_states[0], out.encoder_hidden_states[0]]
        for tensor in retained:
            tensor.retain_grad()
        out.logits.flatten()[0].backward()
        assert all(tensor.grad is not None for tensor in retained)

    def test_weights_rewritten_by_another_tool_load(self, tmp_path):
        from safetensors.torch import load_file, save_file

        model = tiny_model()
        model.save_pretrained(tmp_path)
        weights = load_file(tmp_path / "model.safetensors")
        save_file({name: tensor.clone() for name, tensor in reversed(weights.items())}, tmp_path / "model.safetensors")
        reloaded = SimpleS2SForConditionalGeneration.from_pretrained(tmp_path)
        for name, tensor in model.state_dict().items():
            assert torch.equal(reloaded.state_dict()[name], tensor), name


class TestCompileAndExport:
    """The decoding step has no data-dependent Python branch: it compiles whole and exports; so does the forward."""

    @torch.no_grad()
    def test_compiled_step_with_fullgraph_equals_eager(self, attention_type):
        model = peaky_model(attention_type=attention_type, coverage=True)
        input_ids, attention_mask = padded_batch(SOURCES)
        encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask)
        cache = model(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            decoder_input_ids=torch.ones((4, 1), dtype=torch.long),
        ).cache
        step = dict(
            encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=torch.full((4, 1), 7)
        )
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        eager = model(**step, cache=copy_cache(cache)).logits
        torch.testing.assert_close(compiled(**step, cache=copy_cache(cache)).logits, eager)

    def test_generate_with_automatic_compilation_picks_the_eager_tokens(self):
        from transformers import CompileConfig

        model = peaky_model(attention_type="bahdanau")
        input_ids, attention_mask = padded_batch(SOURCES)
        eager = model.generate(input_ids, attention_mask=attention_mask, cache_implementation="static", **GEN)
        compile_config = CompileConfig(fullgraph=True, backend="eager")
        compile_config._compile_all_devices = True  # generate() compiles on accelerators only, unless told
        compiled = model.generate(
            input_ids,
            attention_mask=attention_mask,
            cache_implementation="static",
            compile_config=compile_config,
            **GEN,
        )
        assert hasattr(model, "_compiled_call"), "generate() did not compile the step"
        assert torch.equal(compiled, eager)

    @pytest.mark.slow
    def test_generate_compiled_by_inductor_picks_the_eager_tokens(self):
        """What generate() does on a GPU (inductor; CUDA graphs there), on the CPU: compiled kernels differ from eager
        by float rounding, so tokens are compared on a model whose choices have margins."""
        from transformers import CompileConfig

        model = peaky_model(attention_type="luong_general", coverage=True)
        input_ids, attention_mask = padded_batch(SOURCES)
        kwargs = dict(GEN, cache_implementation="static", return_dict_in_generate=True, output_scores=True)
        eager = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        compile_config = CompileConfig(fullgraph=True)
        compile_config._compile_all_devices = True
        compiled = model.generate(input_ids, attention_mask=attention_mask, compile_config=compile_config, **kwargs)
        assert torch.equal(compiled.sequences, eager.sequences)
        torch.testing.assert_close(torch.stack(compiled.scores), torch.stack(eager.scores), atol=1e-4, rtol=1e-4)

    @torch.no_grad()
    def test_torch_export_of_the_whole_forward(self, attention_type):
        model = tiny_model(attention_type=attention_type, coverage=True)
        input_ids, attention_mask = padded_batch(SOURCES, side="left")
        decoder_input_ids = torch.randint(4, VOCAB_SIZE, (4, 5), generator=seeded_generator(3))
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        exported = torch.export.export(model, args=(), kwargs={**inputs, "use_cache": False})
        torch.testing.assert_close(exported.module()(**inputs, use_cache=False).logits, model(**inputs).logits)

    @torch.no_grad()
    def test_torch_export_of_the_step_with_dynamic_batch_and_source(self, attention_type):
        from hf_simple_s2s.export.onnx import DecoderStep, ExportedEncoder

        model = tiny_model(attention_type=attention_type, coverage=True)
        input_ids, attention_mask = padded_batch(SOURCES)
        hidden, keys, state = ExportedEncoder(model)(input_ids, attention_mask)
        args = (torch.ones((4, 1), dtype=torch.long), hidden, keys, attention_mask, state, torch.zeros(4, 6))
        batch, src = torch.export.Dim("batch", min=2), torch.export.Dim("src", min=2)
        shapes = (
            {0: batch},
            {0: batch, 1: src},
            {0: batch, 1: src},
            {0: batch, 1: src},
            {1: batch},
            {0: batch, 1: src},
        )
        exported = torch.export.export(DecoderStep(model), args, dynamic_shapes=shapes)
        rows = [SOURCES[0], SOURCES[2], SOURCES[0] + SOURCES[1]]
        input_ids, attention_mask = padded_batch(rows)  # another batch size and source length
        hidden, keys, state = ExportedEncoder(model)(input_ids, attention_mask)
        args = (torch.full((3, 1), 9), hidden, keys, attention_mask, state, torch.rand(3, input_ids.shape[1]))
        for got, expected in zip(exported.module()(*args), DecoderStep(model)(*args)):
            torch.testing.assert_close(got, expected)


def copy_cache(cache: EncoderDecoderCache) -> EncoderDecoderCache:
    """A copy to run the same step twice from (the cache is updated in place)."""
    import copy

    return copy.deepcopy(cache)

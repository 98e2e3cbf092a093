"""Argmax word alignment from cross-attention: exact on hand-made weights, and the reversal permutation recovered
from a model trained for a few seconds on sequence reversal."""

import pytest
import torch
from conftest import padded_batch, seeded_generator, tiny_config, tiny_model

from hf_simple_s2s import SimpleS2SForConditionalGeneration
from hf_simple_s2s.inference.alignment import alignment_matrix, argmax_alignment, cross_attention_of, word_alignments


def test_argmax_alignment_respects_masks():
    attention = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    assert argmax_alignment(attention) == [(0, 2), (1, 0), (2, 2)]
    source_mask = torch.tensor([1, 1, 0])
    assert argmax_alignment(attention, source_mask, torch.tensor([1, 0, 1])) == [(0, 1), (2, 1)]
    assert argmax_alignment(attention.unsqueeze(0).unsqueeze(0)) == [(0, 2), (1, 0), (2, 2)]
    assert argmax_alignment(attention, torch.zeros(3, dtype=torch.long)) == []
    expected = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    assert torch.equal(alignment_matrix(argmax_alignment(attention), 3, 3), expected)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"`attention` must have shape \(tgt_len, src_len\), got \(2, 3, 4\)"):
        argmax_alignment(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"`source_mask` must have shape \(4,\)"):
        argmax_alignment(torch.rand(3, 4), source_mask=torch.ones(3))


def test_rescored_attention_equals_the_attention_of_generation():
    """The teacher-forced rerun gives the weights of the greedy decoding steps themselves."""
    model = tiny_model(attention_type="bahdanau", initializer_range=0.5)
    input_ids, attention_mask = padded_batch([[5, 9, 14, 2], [31, 2]])
    out = model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=5,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    during = torch.cat([step[0][:, 0] for step in out.cross_attentions], dim=1)  # (batch, steps, src_len)
    torch.testing.assert_close(cross_attention_of(model, input_ids, attention_mask, out.sequences), during)


def reversal_batch(size: int, generator: torch.Generator):
    """Random words 4..39 (3-7 of them) then eos; the target is the words reversed, then eos."""
    rows = [
        torch.randint(4, 40, (int(torch.randint(3, 8, (1,), generator=generator)),), generator=generator).tolist()
        for _ in range(size)
    ]
    input_ids, attention_mask = padded_batch([row + [2] for row in rows])
    labels, label_mask = padded_batch([row[::-1] + [2] for row in rows])
    return input_ids, attention_mask, labels.masked_fill(label_mask == 0, -100), rows


def test_alignment_recovers_the_reversal_permutation():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices this small are faster on one thread
    try:
        torch.manual_seed(0)
        config = tiny_config(
            embedding_size=32, hidden_size=48, encoder_layers=1, decoder_layers=1, attention_type="luong_general"
        )
        model = SimpleS2SForConditionalGeneration(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        generator = seeded_generator(0)
        for _ in range(150):
            input_ids, attention_mask, labels, _ = reversal_batch(64, generator)
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        model.eval()
        input_ids, attention_mask, _, rows = reversal_batch(100, seeded_generator(5))
        sequences = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=10)
        alignments = word_alignments(model, input_ids, attention_mask, sequences)
    finally:
        torch.set_num_threads(threads)
    # Output word t of a sentence of n words is source word n - 1 - t.
    pairs = [(t, s, len(row)) for row, sentence in zip(rows, alignments) for t, s in sentence]
    recovered = sum(t < n and s == n - 1 - t for t, s, n in pairs)
    assert len(pairs) >= 0.9 * sum(len(row) for row in rows), "eos, pads and the start token are left out"
    assert recovered / len(pairs) >= 0.8, recovered / len(pairs)
    # The untrained model's alignment is no better than chance: the test can fail.
    untrained = word_alignments(tiny_model(attention_type="luong_general"), input_ids, attention_mask, sequences)
    chance = [s == len(row) - 1 - t for row, sentence in zip(rows, untrained) for t, s in sentence if t < len(row)]
    assert sum(chance) / len(chance) < 0.5

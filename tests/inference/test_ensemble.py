"""`SimpleS2SEnsemble`: an ensemble of one is the model; an ensemble of several is the mean of the members'
probabilities at every step, for greedy and beam search, batched or one by one, whatever the members' sizes."""

import pytest
import torch
from conftest import GEN, SOURCES, make_tokenizer, padded_batch, peaky_model
from transformers import pipeline

from hf_simple_s2s import PIPELINE_TASK
from hf_simple_s2s.inference.ensemble import SimpleS2SEnsemble
from hf_simple_s2s.inference.translate import load_translator, main, translate

# Members that differ in attention type, sizes, layers and coverage (which keeps one cache row per decoded token).
MEMBER_SETS = {
    "bahdanau+luong_general": [
        dict(attention_type="bahdanau"),
        dict(attention_type="luong_general", hidden_size=24, embedding_size=8, encoder_layers=1, decoder_layers=1),
    ],
    "luong_dot+bahdanau_coverage+unidirectional": [
        dict(attention_type="luong_dot"),
        dict(attention_type="bahdanau", coverage=True, decoder_layers=3),
        dict(attention_type="luong_general", bidirectional_encoder=False, hidden_size=20),
    ],
}


def members_of(name: str) -> list:
    return [peaky_model(seed, **overrides) for seed, overrides in enumerate(MEMBER_SETS[name])]


@pytest.fixture(params=sorted(MEMBER_SETS))
def members(request) -> list:
    return members_of(request.param)


@pytest.fixture(params=["right", "left"])
def batch(request) -> tuple[torch.Tensor, torch.Tensor]:
    return padded_batch(SOURCES, side=request.param)


@torch.no_grad()
def mean_log_probs(members: list, input_ids, attention_mask, sequences) -> torch.Tensor:
    """By hand: each member teacher-forced on `sequences` without a cache, the softmaxes averaged, then the log.
    Returns `(batch, len - 1, vocab)`: the distribution of each next token of `sequences`."""
    probs = [
        member(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=sequences[:, :-1], use_cache=False
        )
        .logits.float()
        .softmax(dim=-1)
        for member in members
    ]
    return torch.stack(probs).mean(dim=0).log()


def generated(model, input_ids, attention_mask, **kwargs):
    return model.generate(
        input_ids, attention_mask=attention_mask, **GEN, **kwargs, output_scores=True, return_dict_in_generate=True
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_beams=1),
        dict(num_beams=3),
        dict(num_beams=3, num_return_sequences=2, length_penalty=0.5),
        dict(num_beams=1, no_repeat_ngram_size=2, bad_words_ids=[[9], [16]]),
        dict(num_beams=1, cache_implementation="static"),
    ],
    ids=["greedy", "beam", "beam-returns-2", "processors", "static-cache"],
)
def test_an_ensemble_of_one_is_the_model(attention_type, batch, kwargs):
    model = peaky_model(attention_type=attention_type)
    expected = generated(model, *batch, **kwargs)
    got = generated(SimpleS2SEnsemble([model]), *batch, **kwargs)
    torch.testing.assert_close(got.sequences, expected.sequences, rtol=0, atol=0)
    if kwargs["num_beams"] > 1:
        torch.testing.assert_close(got.sequences_scores, expected.sequences_scores)
    else:  # the model's greedy scores are its (processed) logits, the ensemble's its log-probabilities, processed
        torch.testing.assert_close(
            torch.stack(got.scores).log_softmax(-1), torch.stack(expected.scores).log_softmax(-1)
        )


@pytest.mark.parametrize("kwargs", [dict(), dict(top_k=5, temperature=0.7), dict(top_p=0.8)])
def test_an_ensemble_of_one_samples_as_the_model(attention_type, batch, kwargs):
    model = peaky_model(attention_type=attention_type)
    torch.manual_seed(3)
    expected = model.generate(batch[0], attention_mask=batch[1], **GEN, do_sample=True, **kwargs)
    torch.manual_seed(3)
    got = SimpleS2SEnsemble([model]).generate(batch[0], attention_mask=batch[1], **GEN, do_sample=True, **kwargs)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_greedy_follows_the_mean_of_the_members_probabilities(members, batch):
    output = generated(SimpleS2SEnsemble(members), *batch, num_beams=1)
    expected = mean_log_probs(members, *batch, output.sequences)
    torch.testing.assert_close(torch.stack(output.scores, dim=1), expected)
    choices = expected.argmax(dim=-1)  # (batch, steps)
    for row, sequence in enumerate(output.sequences[:, 1:]):
        steps = (sequence == GEN["eos_token_id"]).nonzero()[0, 0] + 1 if GEN["eos_token_id"] in sequence else None
        torch.testing.assert_close(sequence[:steps], choices[row, :steps], rtol=0, atol=0)


def test_beam_scores_are_the_mean_of_the_members_probabilities(members, batch):
    """Each token's transition score, and each returned hypothesis's score, are what the members' averaged
    probabilities give for that token and hypothesis: every beam's cache followed its hypothesis when generate()
    reordered the beams."""
    ensemble = SimpleS2SEnsemble(members)
    output = generated(ensemble, *batch, num_beams=4, num_return_sequences=2, length_penalty=0.0)
    transition = ensemble.compute_transition_scores(output.sequences, output.scores, output.beam_indices)
    input_ids, attention_mask = (tensor.repeat_interleave(2, dim=0) for tensor in batch)
    expected = mean_log_probs(members, input_ids, attention_mask, output.sequences)
    expected = expected.gather(-1, output.sequences[:, 1:].unsqueeze(-1)).squeeze(-1)  # (batch * 2, steps)
    decoded = output.beam_indices[:, : expected.shape[1]] >= 0  # the steps of each hypothesis, up to its eos
    assert (~decoded).any()  # some hypotheses ended before others
    torch.testing.assert_close(transition[decoded], expected[decoded])
    torch.testing.assert_close(output.sequences_scores, (expected * decoded).sum(dim=1))


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batched_equals_one_by_one(members, batch, num_beams):
    ensemble = SimpleS2SEnsemble(members)
    batched = generated(ensemble, *batch, num_beams=num_beams)
    for row, source in enumerate(SOURCES):
        alone = generated(
            ensemble, torch.tensor([source]), torch.ones(1, len(source), dtype=torch.long), num_beams=num_beams
        )
        length = alone.sequences.shape[1]
        torch.testing.assert_close(batched.sequences[row, :length], alone.sequences[0], rtol=0, atol=0)
        assert (batched.sequences[row, length:] == GEN["pad_token_id"]).all()
        if num_beams > 1:
            torch.testing.assert_close(batched.sequences_scores[row], alone.sequences_scores[0])


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(vocab_size=41), "vocab_size"),
        (dict(eos_token_id=3), "eos_token_id"),
        (dict(pad_token_id=3), "pad_token_id"),
    ],
)
def test_members_that_cannot_share_the_tokenizer_are_refused(overrides, field):
    with pytest.raises(ValueError, match=rf"^ensemble member 1 .*{field}=.*must share the tokenizer$"):
        SimpleS2SEnsemble([peaky_model(0), peaky_model(1, **overrides)])


@pytest.mark.parametrize("bad", [[], "model-folder", [torch.nn.Linear(2, 2)]])
def test_bad_member_lists_are_refused(bad):
    with pytest.raises(ValueError, match="member|names"):
        SimpleS2SEnsemble.from_pretrained(bad) if isinstance(bad, str) or not bad else SimpleS2SEnsemble(bad)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> list[str]:
    """Two members of different attention types saved with the word tokenizer, as training runs save them."""
    paths = []
    for seed, overrides in enumerate(MEMBER_SETS["bahdanau+luong_general"]):
        path = tmp_path_factory.mktemp(f"member{seed}")
        peaky_model(seed, **overrides).save_pretrained(path)
        make_tokenizer("words").save_pretrained(path)
        paths.append(str(path))
    return paths


def test_loaded_ensemble_pipeline_and_command_line_agree(folders, capsys):
    texts = ["w5 w9 w14 w22 w7", "w31 w12", "w8 w8 w19 w25"]
    ensemble = SimpleS2SEnsemble.from_pretrained(folders)
    members = members_of("bahdanau+luong_general")
    for loaded, made in zip(ensemble.members, members, strict=True):
        torch.testing.assert_close(loaded.state_dict(), made.state_dict(), rtol=0, atol=0)
    model, tokenizer = load_translator(",".join(folders))
    assert isinstance(model, SimpleS2SEnsemble)
    expected = translate(texts, ensemble, tokenizer, num_beams=3, max_new_tokens=8)
    assert translate(texts, model, tokenizer, num_beams=3, max_new_tokens=8) == expected
    assert expected != translate(texts, members[0], tokenizer, num_beams=3, max_new_tokens=8)

    translator = pipeline(PIPELINE_TASK, model=ensemble, tokenizer=tokenizer)
    outputs = translator(texts, num_beams=3, max_new_tokens=8)
    assert [output["translation_text"].strip() for output in outputs] == expected

    main([",".join(folders), *texts, "--num_beams", "3", "--max_new_tokens", "8"])
    assert capsys.readouterr().out.splitlines() == expected


def test_command_line_refuses_members_with_other_tokenizers(folders, tmp_path, capsys):
    other = tmp_path / "other"
    peaky_model(2, vocab_size=41).save_pretrained(other)
    make_tokenizer("words").save_pretrained(other)
    with pytest.raises(SystemExit):
        main([f"{folders[0]},{other}", "w5 w9"])
    assert "ensemble member 1" in capsys.readouterr().err

"""The attention heatmap helper: a PNG of the requested size, and the weights it is given from any model output."""

import struct

import pytest
import torch
from conftest import make_tokenizer
from main_job_helpers import GERMAN, tiny_translation_model

from hf_simple_s2s.inference.plotting import cross_attention_matrix, plot_attention


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])  # IHDR: width, height


@pytest.mark.parametrize(("figsize", "dpi"), [((4.0, 3.0), 50), ((6.4, 2.5), 100)])
def test_png_has_the_requested_size(tmp_path, figsize, dpi):
    weights = torch.softmax(torch.randn(3, 5), dim=-1)
    path = plot_attention(weights, list("abcde"), ["x", "y", "</s>"], tmp_path / "a.png", figsize=figsize, dpi=dpi)
    assert png_size(path) == (round(figsize[0] * dpi), round(figsize[1] * dpi))


def test_default_size_grows_with_the_token_counts(tmp_path):
    small = plot_attention(torch.rand(2, 2), ["a", "b"], ["x", "y"], tmp_path / "small.png")
    large = plot_attention(torch.rand(9, 12), [str(i) for i in range(12)], list("abcdefghi"), tmp_path / "large.png")
    assert all(a < b for a, b in zip(png_size(small), png_size(large), strict=True))


def test_mismatched_labels_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(3, 5\) but there are 2 target and 5 source tokens"):
        plot_attention(torch.rand(1, 1, 3, 5), list("abcde"), ["x", "y"], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_generate_attentions_equal_a_forward_pass_over_the_generated_tokens(tmp_path):
    tokenizer = make_tokenizer("multi30k")
    model = tiny_translation_model(len(tokenizer), seed=1)
    inputs = tokenizer(GERMAN[:3], padding=True, return_tensors="pt")
    generated = model.generate(
        **inputs, max_new_tokens=6, do_sample=False, output_attentions=True, return_dict_in_generate=True
    )
    forward = model(**inputs, decoder_input_ids=generated.sequences[:, :-1], output_attentions=True)
    for index in range(3):
        from_generate = cross_attention_matrix(generated.cross_attentions, index=index)  # (steps, src_len)
        from_forward = cross_attention_matrix(forward.cross_attentions, index=index)
        torch.testing.assert_close(from_generate, from_forward)
        source_tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][index])
        target_tokens = tokenizer.convert_ids_to_tokens(generated.sequences[index, 1:])
        path = plot_attention(from_generate, source_tokens, target_tokens, tmp_path / f"{index}.png")
        assert png_size(path)[0] > 0


def test_alignment_is_drawn_as_red_squares_over_the_heatmap(tmp_path):
    from matplotlib.image import imread

    from hf_simple_s2s.inference.alignment import argmax_alignment

    weights = torch.softmax(torch.randn(4, 4) * 3, dim=-1)
    labels = list("abcd")
    plain = plot_attention(weights, labels, labels, tmp_path / "plain.png", figsize=(4, 4))
    aligned = plot_attention(
        weights, labels, labels, tmp_path / "aligned.png", figsize=(4, 4), alignment=argmax_alignment(weights)
    )

    def red_pixels(path) -> int:  # viridis and the labels hold no pure red
        rgb = imread(path)[..., :3]
        return int(((rgb[..., 0] > 0.9) & (rgb[..., 1] < 0.2) & (rgb[..., 2] < 0.2)).sum())

    assert red_pixels(plain) == 0
    assert red_pixels(aligned) > 50

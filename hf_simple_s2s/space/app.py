"""A web page (Gradio) that translates with a saved SimpleS2S and shows the attention of each output token.

`python -m hf_simple_s2s.space.app MODEL_DIR_OR_HUB_NAME` (or `python app.py ...` in a Space folder that
`write_space` made). The heatmap is the attention of the chosen hypothesis with its argmax alignment marked, as the
training job's plots draw it (Bahdanau et al. 2015, figure 3).
"""

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hf_simple_s2s.data import read_lines
from hf_simple_s2s.inference.alignment import argmax_alignment, cross_attention_of
from hf_simple_s2s.inference.quantize import quantize_int8
from hf_simple_s2s.inference.translate import OneLineArgumentParser, load_translator

# The shipped Multi30k test set (German side): the page's example list when run from a clone of the repository.
SHIPPED_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data" / "multi30k" / "test_2016_flickr.de.gz"
# The sliders' upper ends bound a request: 10 beams x 200 tokens from a 100-token source took 0.7 s with the tiny
# preset's model and 6.6 s at the full preset's size (one CPU thread of a loaded 2-core machine).
MAX_BEAMS = 10
MAX_NEW_TOKENS = 200


@dataclass
class DecodingOptions:
    """The page's decoding controls, passed to `generate()` under these names."""

    num_beams: int = 1  # 1: greedy
    length_penalty: float = 1.0  # beam search only: the score is the log-probability / length ** length_penalty
    no_repeat_ngram_size: int = 0
    num_return_sequences: int = 1
    max_new_tokens: int = 50

    def __post_init__(self):
        # Sliders send floats through the API; whole numbers are taken as ints, anything else is refused.
        for name in ("num_beams", "no_repeat_ngram_size", "num_return_sequences", "max_new_tokens"):
            value = getattr(self, name)
            if value != int(value):
                raise ValueError(f"{name} must be a whole number, got {value}")
            setattr(self, name, int(value))
        if not 1 <= self.num_beams <= MAX_BEAMS:
            raise ValueError(f"num_beams must be between 1 and {MAX_BEAMS}, got {self.num_beams}")
        if not 1 <= self.num_return_sequences <= self.num_beams:
            raise ValueError(
                f"num_return_sequences must be between 1 and the beam width {self.num_beams}, "
                f"got {self.num_return_sequences}"
            )
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}, got {self.max_new_tokens}")
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")


@dataclass
class Hypothesis:
    """One returned translation, its score and the attention with which it was produced."""

    text: str
    score: float  # beam search: generate()'s sequences_scores; greedy: the sum of the tokens' log-probabilities
    source_tokens: list[str]
    target_tokens: list[str]  # the output tokens, the end-of-sentence token included
    attention: list[list[float]]  # (len(target_tokens), len(source_tokens))
    alignment: list[tuple[int, int]]  # argmax (target position, source position) pairs


@torch.no_grad()
def translate_with_attention(
    text: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    options: DecodingOptions,
    max_source_tokens: int,
) -> list[Hypothesis]:
    """The hypotheses of `generate()` for one sentence, best first, each with its attention heatmap."""
    if not text.strip():
        raise ValueError("the source sentence is empty: type a sentence to translate")
    inputs = tokenizer(text.strip(), return_tensors="pt").to(model.device)
    source_length = inputs["input_ids"].shape[1]
    if source_length > max_source_tokens:
        raise ValueError(
            f"the source sentence has {source_length} tokens, this page translates at most {max_source_tokens}: "
            "shorten it"
        )
    output = model.generate(
        **inputs,
        **asdict(options),
        max_length=None,  # the saved `max_length` gives way to `max_new_tokens` without generate()'s warning
        output_scores=True,
        output_logits=True,
        return_dict_in_generate=True,
    )
    sequences = output.sequences  # (num_return_sequences, 1 + out_len): decoder start, tokens, eos, pads
    if options.num_beams > 1:
        scores = output.sequences_scores
    else:  # the model's log-probabilities (its raw logits: no_repeat_ngram_size's masking renormalizes nothing)
        scores = model.compute_transition_scores(sequences, output.logits, normalize_logits=True).sum(-1)
    count = len(sequences)
    attention = cross_attention_of(
        model, inputs["input_ids"].expand(count, -1), inputs["attention_mask"].expand(count, -1), sequences
    )  # (count, out_len, src_len)
    source_tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    hypotheses = []
    for i, sequence in enumerate(sequences):
        output_ids = sequence[1:]
        ends = (output_ids == model.config.eos_token_id).nonzero()
        length = int(ends[0]) + 1 if len(ends) else len(output_ids)  # up to and including the first eos
        weights = attention[i, :length]  # (length, src_len)
        hypotheses.append(
            Hypothesis(
                text=tokenizer.decode(output_ids, skip_special_tokens=True).strip(),
                score=float(scores[i]),
                source_tokens=source_tokens,
                target_tokens=tokenizer.convert_ids_to_tokens(output_ids[:length]),
                attention=weights.tolist(),
                alignment=argmax_alignment(weights),
            )
        )
    return hypotheses


def attention_figure(hypothesis: Hypothesis) -> go.Figure:
    """An interactive heatmap: a row per output token, a column per source token, the argmax alignment boxed."""
    # Plotly reads labels as HTML: '</s>' would vanish.
    source, target = (
        [html.escape(t) for t in hypothesis.source_tokens],
        [html.escape(t) for t in hypothesis.target_tokens],
    )
    figure = go.Figure(
        go.Heatmap(
            z=hypothesis.attention,
            x=list(range(len(source))),  # positions, not the tokens: a token that occurs twice keeps two columns
            y=list(range(len(target))),
            customdata=[[(t, s) for s in source] for t in target],
            hovertemplate="%{customdata[0]} ← %{customdata[1]}: %{z:.3f}<extra></extra>",
            colorscale="Viridis",
            zmin=0.0,  # the color scale of the training job's plots: 0 to the largest weight
            zmax=max(max(row) for row in hypothesis.attention),
            colorbar=dict(title="attention"),
        )
    )
    if hypothesis.alignment:
        targets, sources = zip(*hypothesis.alignment)
        figure.add_trace(
            go.Scatter(
                x=sources,
                y=targets,
                mode="markers",
                marker=dict(symbol="square-open", size=18, color="red", line=dict(width=2)),
                name="argmax",
                hoverinfo="skip",
            )
        )
    figure.update_layout(  # the ranges fit the heatmap's cells (the markers would widen them); output rows top down
        xaxis=dict(
            title="source",
            tickmode="array",
            tickvals=list(range(len(source))),
            ticktext=source,
            range=[-0.5, len(source) - 0.5],
        ),
        yaxis=dict(
            title="output",
            tickmode="array",
            tickvals=list(range(len(target))),
            ticktext=target,
            range=[len(target) - 0.5, -0.5],
        ),
        height=180 + 28 * len(target),
        margin=dict(l=20, r=20, t=30, b=20),
        showlegend=False,
    )
    return figure


def read_examples(path: str | Path | None, count: int = 10) -> list[str]:
    """The first `count` non-empty lines of a text file (gzipped if it ends in .gz); none when `path` is None."""
    if path is None:
        return []
    return [line.strip() for line in read_lines(path) if line.strip()][:count]


def build_demo(
    models: dict[str, PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    title: str = "SimpleS2S",
    examples: Sequence[str] = (),
    max_source_tokens: int = 100,
) -> gr.Blocks:
    """The page. `models` maps a label to a model that shares `tokenizer` (e.g. the model and an int8 copy of it);
    with more than one, the page lets the user choose."""
    if not models:
        raise ValueError("models must name at least one model, got none")
    if max_source_tokens < 1:
        raise ValueError(f"max_source_tokens must be >= 1, got {max_source_tokens}")
    first = next(iter(models.values()))
    saved = first.generation_config  # the decoding the training job chose on validation
    defaults = DecodingOptions(
        num_beams=min(saved.num_beams or 1, MAX_BEAMS),
        length_penalty=1.0 if saved.length_penalty is None else saved.length_penalty,
        no_repeat_ngram_size=saved.no_repeat_ngram_size or 0,
    )

    def translate(text, model, num_beams, length_penalty, no_repeat_ngram_size, num_return_sequences, max_new_tokens):
        try:
            if model not in models:
                raise ValueError(f"model must be one of {sorted(models)}, got {model!r}")
            options = DecodingOptions(
                num_beams, length_penalty, no_repeat_ngram_size, num_return_sequences, max_new_tokens
            )
            hypotheses = translate_with_attention(text, models[model], tokenizer, options, max_source_tokens)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from None
        table = [[rank, h.text, round(h.score, 4)] for rank, h in enumerate(hypotheses, start=1)]
        choice = gr.Radio(choices=list(range(1, len(hypotheses) + 1)), value=1)
        return table, choice, attention_figure(hypotheses[0]), hypotheses

    def show(rank, hypotheses):
        return attention_figure(hypotheses[rank - 1]) if hypotheses and rank else None

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {title}\nType a sentence, translate it, and see which source tokens each output token "
            "attended to (the red boxes mark the most attended one)."
        )
        source = gr.Textbox(label="Source", lines=2, elem_id="source")
        model_name = gr.Radio(list(models), value=next(iter(models)), label="Model", visible=len(models) > 1)
        with gr.Accordion("Decoding", open=True):
            with gr.Row():
                num_beams = gr.Slider(1, MAX_BEAMS, value=defaults.num_beams, step=1, label="beam width (1: greedy)")
                num_return = gr.Slider(1, MAX_BEAMS, value=1, step=1, label="hypotheses returned (<= beam width)")
                max_new = gr.Slider(1, MAX_NEW_TOKENS, value=defaults.max_new_tokens, step=1, label="max new tokens")
            with gr.Row():
                length_penalty = gr.Slider(0.0, 2.0, value=defaults.length_penalty, step=0.1, label="length penalty")
                no_repeat = gr.Slider(
                    0, 5, value=defaults.no_repeat_ngram_size, step=1, label="no_repeat_ngram_size (0: off)"
                )
        button = gr.Button("Translate", variant="primary", elem_id="translate")
        table = gr.Dataframe(
            headers=["#", "translation", "score"],
            datatype=["number", "str", "number"],
            label="Translations",
            interactive=False,
            wrap=True,
            column_widths=["8%", "77%", "15%"],
            elem_id="translations",
        )
        gr.Markdown(
            "Score: the log-probability of the translation; in beam search divided by its length to the "
            "power of the length penalty (generate()'s `sequences_scores`)."
        )
        rank = gr.Radio([1], value=1, label="Attention of hypothesis")
        plot = gr.Plot(label="Attention", elem_id="attention")
        state = gr.State([])
        if examples:
            gr.Examples([[example] for example in examples], inputs=[source], label="Examples")

        inputs = [source, model_name, num_beams, length_penalty, no_repeat, num_return, max_new]
        outputs = [table, rank, plot, state]
        button.click(translate, inputs, outputs, api_name="translate")
        source.submit(translate, inputs, outputs, api_name=False)
        rank.change(show, [rank, state], plot, api_name="attention")  # of hypothesis `rank` of the last translation
    return demo


def main(
    argv: Sequence[str] | None = None,
    default_model: str | None = None,
    default_examples: str | Path | None = SHIPPED_EXAMPLES,
) -> None:
    """The command line; a Space's `app.py` calls it with its model's Hub name and example file as defaults."""
    parser = OneLineArgumentParser(prog="app.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model",
        nargs="?" if default_model else None,
        default=default_model,
        help="a saved model folder or a Hub repository name; several, joined by commas, decode as an ensemble",
    )
    parser.add_argument(
        "--examples",
        default=default_examples if default_examples and Path(default_examples).is_file() else None,
        help="a text file of example sentences, one per line (default: the shipped test set)",
    )
    parser.add_argument("--max_source_tokens", type=int, default=100, help="longer sentences are refused")
    parser.add_argument("--device", help="e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--port", type=int, help="default: 7860, or $GRADIO_SERVER_PORT")
    parser.add_argument("--int8", action="store_true", help="also offer an int8 copy of the model (CPU)")
    args = parser.parse_args(argv)
    try:
        examples = read_examples(args.examples)
    except (OSError, ValueError) as error:  # ValueError: not UTF-8 text
        parser.error(f"cannot read --examples {args.examples}: {getattr(error, 'strerror', None) or error}")
    try:
        model, tokenizer = load_translator(args.model, args.device)
    except (OSError, ValueError) as error:  # ValueError: ensemble members that do not share the tokenizer
        parser.error(f"cannot load model {args.model!r}: {str(error).splitlines()[0]}")
    models = {"float32": model}  # each variant of the model is one more entry: the page offers a choice
    if args.int8:
        try:
            models["int8"] = quantize_int8(model)
        except ValueError as error:  # an ensemble, or a model on a GPU
            parser.error(f"--int8: {error}")
    try:
        demo = build_demo(models, tokenizer, f"SimpleS2S: {args.model}", examples, args.max_source_tokens)
    except ValueError as error:
        parser.error(str(error))
    demo.launch(server_port=args.port, ssr_mode=False)


if __name__ == "__main__":
    main()

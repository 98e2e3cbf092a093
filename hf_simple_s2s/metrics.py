"""Corpus BLEU and chrF as `evaluate` metrics computed by sacrebleu, defined here so that they work offline.

`evaluate.load("sacrebleu")` fetches its script from the Hub; these classes are the same metrics without the download.
"""

import datasets
import evaluate
import sacrebleu

_FEATURES = datasets.Features(
    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
)


def reference_streams(references: list[list[str]]) -> list[tuple[str, ...]]:
    """evaluate's per-sentence reference lists -> sacrebleu's per-stream lists (all sentences need as many)."""
    return list(zip(*references, strict=True))


class SacreBleu(evaluate.Metric):
    """Detokenized corpus BLEU (Post 2018), cased unless `lowercase=True`; `13a` tokenization as in WMT."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(description=self.__doc__, citation="", features=_FEATURES)

    def _compute(self, predictions, references, lowercase: bool = False, tokenize: str = "13a") -> dict:
        scorer = sacrebleu.BLEU(lowercase=lowercase, tokenize=tokenize)
        score = scorer.corpus_score(predictions, reference_streams(references))
        return {"score": score.score, "signature": str(scorer.get_signature())}


class ChrF(evaluate.Metric):
    """Character n-gram F-score (Popović 2015), sacrebleu's defaults (chrF2, character 6-grams)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(description=self.__doc__, citation="", features=_FEATURES)

    def _compute(self, predictions, references) -> dict:
        return {"score": sacrebleu.corpus_chrf(predictions, reference_streams(references)).score}


def bleu_signature(lowercase: bool = False) -> str:
    """sacreBLEU's signature of the BLEU settings used here (one reference), for reports."""
    return str(
        SacreBleu(keep_in_memory=True).compute(predictions=["a"], references=[["a"]], lowercase=lowercase)["signature"]
    )


def translation_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """`bleu` (cased, detokenized sacreBLEU), `bleu_lowercase` and `chrf`, each in [0, 100]."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    refs = [[reference] for reference in references]
    bleu, chrf = SacreBleu(keep_in_memory=True), ChrF(keep_in_memory=True)
    return {
        "bleu": bleu.compute(predictions=predictions, references=refs)["score"],
        "bleu_lowercase": bleu.compute(predictions=predictions, references=refs, lowercase=True)["score"],
        "chrf": chrf.compute(predictions=predictions, references=refs)["score"],
    }


__all__ = ["ChrF", "SacreBleu", "bleu_signature", "translation_scores"]

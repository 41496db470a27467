"""Text-overlap metrics: ROUGE-1/2/L F1 (own implementation; characters for Chinese, lowercased
words otherwise, as is usual for Chinese ROUGE), and chrF / BLEU through sacrebleu (BLEU into
Chinese with sacrebleu's "zh" tokeniser)."""

from __future__ import annotations

from collections import Counter

from loom.text import units  # ROUGE tokens: each CJK character alone, other words lowercased


def _f1(overlap: int, candidate: int, reference: int) -> float:
    if overlap == 0 or candidate == 0 or reference == 0:
        return 0.0
    p, r = overlap / candidate, overlap / reference
    return 2 * p * r / (p + r)


def rouge_n(candidate: str, reference: str, n: int) -> float:
    def grams(tokens):
        return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))

    c, r = grams(units(candidate)), grams(units(reference))
    return _f1(sum((c & r).values()), sum(c.values()), sum(r.values()))


def rouge_l(candidate: str, reference: str) -> float:
    c, r = units(candidate), units(reference)
    if not c or not r:
        return 0.0
    prev = [0] * (len(r) + 1)  # LCS by dynamic programming, one row at a time: O(len(c) * len(r))
    for token in c:
        row = [0]
        for j, ref_token in enumerate(r, 1):
            row.append(prev[j - 1] + 1 if token == ref_token else max(prev[j], row[j - 1]))
        prev = row
    return _f1(prev[-1], len(c), len(r))


def rouge(candidates: list[str], references: list[str]) -> dict:
    """Mean ROUGE-1/2/L F1 over pairs, in [0, 1]."""
    pairs = list(zip(candidates, references))
    return {"rouge1": sum(rouge_n(c, r, 1) for c, r in pairs) / len(pairs),
            "rouge2": sum(rouge_n(c, r, 2) for c, r in pairs) / len(pairs),
            "rougeL": sum(rouge_l(c, r) for c, r in pairs) / len(pairs)}


def translation_scores(hypotheses: list[str], references: list[str], target: str) -> dict:
    """Corpus chrF and BLEU (sacrebleu), BLEU tokenised for Chinese when the target is zh."""
    try:
        import sacrebleu
    except ImportError as e:
        from loom.errors import InputError

        raise InputError("translation metrics need sacrebleu", "pip install sacrebleu") from e
    bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="zh" if target == "zh" else "13a")
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    return {"chrf": round(chrf.score, 2), "bleu": round(bleu.score, 2)}


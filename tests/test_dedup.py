import random

import numpy as np

from loom.data.clean import codepoints, normalize, script_counts, SCRIPTS
from loom.data.dedup import NearDuplicateIndex, lsh_params, signature


def _jaccard(a: str, b: str, k: int = 5) -> float:
    sa = {a[i : i + k] for i in range(len(a) - k + 1)}
    sb = {b[i : i + k] for i in range(len(b) - k + 1)}
    return len(sa & sb) / len(sa | sb)


def test_signature_agreement_tracks_jaccard():
    rng = random.Random(1)
    words = [f"w{rng.randint(0, 5000)}" for _ in range(400)]
    a = " ".join(words)
    for n_changes in (5, 40, 150):
        w2 = list(words)
        for i in rng.sample(range(len(w2)), n_changes):
            w2[i] = f"x{rng.randint(0, 5000)}"
        b = " ".join(w2)
        est = float(np.mean(signature(codepoints(a), 5, 256) == signature(codepoints(b), 5, 256)))
        assert abs(est - _jaccard(a, b)) < 0.1


def test_index_finds_near_duplicates_not_strangers():
    rng = random.Random(2)
    index = NearDuplicateIndex(64, 0.8)
    docs = [" ".join(f"t{rng.randint(0, 10**6)}" for _ in range(200)) for _ in range(200)]
    assert not any(index.seen(signature(codepoints(d), 5, 64)) for d in docs)
    caught = 0
    for d in docs:
        words = d.split()
        words[rng.randrange(len(words))] = "changed"
        caught += index.seen(signature(codepoints(" ".join(words)), 5, 64))
    assert caught >= 195


def test_lsh_params_fit_perm_budget():
    bands, rows = lsh_params(64, 0.8)
    assert bands * rows <= 64 and bands > 1


def test_scripts_and_normalisation():
    text = normalize("Ｈｅｌｌｏ\u3000世界\t\t!\r\n\n\n\nnext\x07line")
    assert text == "Hello 世界 !\n\nnextline"
    counts = dict(zip(SCRIPTS, script_counts(codepoints(text)).tolist()))
    assert counts["Latin"] == 13 and counts["Han"] == 2 and counts["Common"] == 1

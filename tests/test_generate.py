"""`loom generate` on a Loom run, sampling rules, and (slow) the built-in SmolLM2 GGUF."""

import pytest
import torch

from conftest import run_loom
from loom.config import GenerateConfig
from loom.model.decode import apply_sampling


def test_generate_streams_and_is_reproducible_with_seed(pipeline):
    args = ["generate", "nano", "--prompt", "the river", "--max-new-tokens", "20", "--seed", "3", "--temperature", "1.0"]
    a = run_loom(*args, env_home=pipeline["home"])
    b = run_loom(*args, env_home=pipeline["home"])
    assert a.stdout == b.stdout and a.stdout.startswith("the river")
    assert "tokens in" in a.stderr and "tok/s" in a.stderr
    c = run_loom(*args[:-4], "--seed", "4", "--temperature", "1.0", env_home=pipeline["home"])
    assert c.stdout != a.stdout


def test_generate_respects_max_new_tokens_and_stop(in_pipeline):
    from loom.backends.local import generate
    from loom.model.load import load_model
    from loom.catalog import resolve

    model, tok = load_model(resolve("nano"))
    gen = generate(model, tok, "the", GenerateConfig(max_new_tokens=7, temperature=0, seed=0))
    text = "".join(gen)
    assert gen.completion_tokens <= 7 and gen.finish_reason in ("length", "stop")
    assert tok.decode(gen.completion_ids, skip_special_tokens=True) == text
    if len(text) > 3:
        stop = text[2:4]
        gen2 = generate(model, tok, "the", GenerateConfig(max_new_tokens=7, temperature=0, stop=[stop]))
        out = "".join(gen2)
        assert stop not in out and gen2.finish_reason == "stop" and text.startswith(out)


def test_prompt_longer_than_context_is_refused(pipeline):
    proc = run_loom("generate", "nano", "--prompt", "river " * 400, env_home=pipeline["home"], check=False)
    assert proc.returncode == 2 and "the model's context is 128" in proc.stderr


def test_unknown_model(pipeline):
    proc = run_loom("generate", "nope", "--prompt", "x", env_home=pipeline["home"], check=False)
    assert proc.returncode == 2 and "model 'nope' not found" in proc.stderr and "loom models list" in proc.stderr


def test_sampling_rules():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    greedy = apply_sampling(logits, [], GenerateConfig(temperature=0))
    assert greedy.tolist() == [1.0, 0.0, 0.0, 0.0]
    top2 = apply_sampling(logits, [], GenerateConfig(temperature=1.0, top_k=2, top_p=1.0))
    assert (top2[2:] == 0).all() and top2.sum().item() == pytest.approx(1.0)
    nucleus = apply_sampling(logits, [], GenerateConfig(temperature=1.0, top_k=0, top_p=0.5))
    assert nucleus.tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])  # token 0 alone holds > 50%
    penalised = apply_sampling(logits, [0], GenerateConfig(temperature=0, repetition_penalty=3.0))
    assert penalised.argmax().item() == 1  # 2.0 / 3 < 1.0


def _full_sort_nucleus(probs, top_p):
    sorted_probs, order = torch.sort(probs, descending=True)
    sorted_probs[(torch.cumsum(sorted_probs, 0) - sorted_probs) >= top_p] = 0.0
    out = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return out / out.sum()


@pytest.mark.parametrize("scale", [4.0, 0.05])  # peaked (top-k shortcut) and flat (full-sort fallback)
def test_nucleus_on_a_large_vocabulary_equals_the_full_sort(scale):
    logits = torch.randn(150_000, generator=torch.Generator().manual_seed(0)) * scale
    fast = apply_sampling(logits, [], GenerateConfig(temperature=1.0, top_k=0, top_p=0.9))
    reference = _full_sort_nucleus(torch.softmax(logits, -1), 0.9)
    assert torch.equal(fast > 0, reference > 0) and torch.allclose(fast, reference, atol=1e-7)
    assert 1 < int((fast > 0).sum()) < 150_000


def test_draws_follow_the_distribution_skip_zero_tokens_and_repeat_with_a_seed():
    from loom.model.decode import SequenceState

    def draws(n, seed=5):
        state = SequenceState(None, [], GenerateConfig(temperature=1.0, seed=seed), set(), 100)
        return [state._draw(probs) for _ in range(n)]

    probs = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.2, 0.0])
    counts = torch.bincount(torch.tensor(draws(20_000)), minlength=6)
    assert counts[[0, 2, 5]].sum() == 0
    assert (counts.float() / 20_000 - probs).abs().max() < 0.015  # ~4 standard errors at n = 20k
    assert draws(50) == draws(50) != draws(50, seed=6)


@pytest.mark.slow
def test_smollm2_gguf_answers(tmp_path, loom_home):
    proc = run_loom("generate", "smollm2", "--prompt", "What is the capital of France? Answer in one word.",
                    "--temperature", "0", "--max-new-tokens", "20", env_home=loom_home)
    assert "Paris" in proc.stdout
    listing = run_loom("models", "show", "smollm2", "--json", env_home=loom_home)
    assert '"chat": true' in listing.stdout
    # The dequantised copy is cached as a standard HF folder: second load is fast.
    assert any((loom_home / "cache" / "gguf").iterdir())


def test_one_decode_path_alone_or_batched(in_pipeline):
    """`loom generate`'s one-row engine and the server's batched engine (left-padded rows of different
    lengths, joining together) give the same greedy tokens: the decode path is one."""
    import threading

    from loom import registry
    from loom.backends.base import Request, Sampling
    from loom.backends.local import generate
    from loom.catalog import resolve
    from loom.model.load import load_model

    prompts = ["the", "the river runs past old stone bridges", "birds sing over green fields and quiet towns"]
    model, tok = load_model(resolve("nano"))
    alone = ["".join(generate(model, tok, p, GenerateConfig(max_new_tokens=12, temperature=0))) for p in prompts]
    served = registry.open_backend("nano", max_batch=4)
    results = [None] * len(prompts)
    start = threading.Barrier(len(prompts))

    def ask(i):
        start.wait()
        results[i] = "".join(c.text for c in served.stream(Request(Sampling(max_tokens=12, temperature=0), prompt=prompts[i])))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert served.engine.max_rows_seen > 1  # they really were decoded together
    served.close()
    assert results == alone

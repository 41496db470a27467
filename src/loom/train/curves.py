"""Loss curve PNG from metrics.jsonl (train loss per logged step, val loss per eval)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from loom import atomic


def plot_loss(metrics_path: Path, out_path: Path, title: str) -> None:
    from loom.plotting import pyplot

    plt = pyplot()

    train, val = [], []
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            train.append((rec["step"], rec["loss"]))
        if "val_loss" in rec and "loss" not in rec:
            val.append((rec["step"], rec["val_loss"]))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(out_path, buf.getvalue())

"""Matplotlib for Loom's figures (loss curves, confusion matrices, report charts): headless, and able
to draw Chinese. DejaVu Sans, matplotlib's default, has no Han characters, so a Chinese label would
come out as empty boxes. Matplotlib (3.6+) falls back glyph by glyph along the family list, so a CJK
font installed on the machine is put after DejaVu Sans (`make browser-deps` installs Noto CJK on Debian)."""

from __future__ import annotations

# Common CJK sans fonts on Linux, macOS and Windows, in order of preference.
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "SimHei")


def pyplot():
    """matplotlib.pyplot on the Agg backend, with a CJK fallback font when the machine has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [name for name in CJK_FONTS if name in installed]
    if cjk:
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", *cjk[:1]]
    return plt

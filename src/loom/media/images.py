"""Images in: recognise the format from the bytes, refuse what is unsafe or broken, decode to RGB.

Every image that reaches OCR (a file, an upload, a chat part, a rendered PDF page) passes through
`decode_image`. The checks run in the order that costs least:
  1. size in bytes (before anything is parsed);
  2. the format from the first bytes, never from the file name or a declared MIME type (a ZIP
     renamed .png is a ZIP); the name only words the error;
  3. width x height from the header, before any pixel is decoded: a 30,000 x 30,000 PNG of a few KB
     (a decompression bomb) is refused here, never inflated to 2.7 GB;
  4. the decode itself, which names a truncated or corrupt file.
Animated images give their first frame."""

from __future__ import annotations

import io
import threading
from loom.config import MediaConfig
from loom.errors import InputError

IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
SCAN_TYPES = {".pdf"} | IMAGE_TYPES  # files read through loom.media: a PDF's text layer, or OCR
IMAGE_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff",
              "bmp": "image/bmp", "gif": "image/gif"}


_settings = MediaConfig()
_PILLOW_CEILING = threading.Lock()  # Image.MAX_IMAGE_PIXELS is a module global: switch it off for one open() at a time


def configure(settings: MediaConfig) -> None:
    """The process's limits and OCR engine (`loom serve` sets its config's `media:`; commands use the defaults)."""
    global _settings
    _settings = settings


def settings() -> MediaConfig:
    return _settings


_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"%PDF-", "pdf"),
    (b"PK\x03\x04", "a ZIP archive"), (b"PK\x05\x06", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"\x7fELF", "a program"),
]
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # "BM" alone would match text that starts with "BM"


def sniff(data: bytes) -> str | None:
    """The format the bytes start with: png, jpeg, gif, tiff, bmp, webp, pdf, or a phrase naming a
    non-image ("a ZIP archive"); None when nothing matches."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    return None


def is_image_kind(kind: str | None) -> bool:
    return kind in IMAGE_MIME


def check_bytes(data: bytes, name: str, limits: MediaConfig) -> str:
    """Size and format checks; returns the sniffed kind (an image kind or "pdf")."""
    if not data:
        raise InputError(f"{name} is empty (0 bytes)", "upload the file again; the copy that arrived has no content")
    if len(data) > limits.max_bytes:
        raise InputError(f"{name} is {len(data):,} bytes, over the {limits.max_bytes:,}-byte limit for images and scans",
                         "shrink or split it, or raise media.max_bytes in the serve config")
    kind = sniff(data)
    if not (is_image_kind(kind) or kind == "pdf"):
        found = f"its bytes are {kind}" if kind else "its bytes match no image format"
        raise InputError(f"{name} is not an image or PDF ({found})",
                         f"send a {', '.join(sorted(IMAGE_MIME))} image or a PDF; the name and MIME type do not decide the format")
    return kind


def decode_image(data: bytes, name: str, limits: MediaConfig | None = None):
    """Bytes -> an RGB PIL image, after the checks above. InputError names the problem and the limit."""
    from PIL import Image, UnidentifiedImageError

    limits = limits or _settings
    kind = check_bytes(data, name, limits)
    if kind == "pdf":
        raise InputError(f"{name} is a PDF, not an image", "read it with read_pages (loom ocr, loom kb add take PDFs)")
    try:
        with _PILLOW_CEILING:  # Pillow's own bomb check runs in open(): off for the header read, our limit decides
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = previous
        width, height = image.size  # from the header: nothing decoded yet
        check_pixels(width, height, name, limits)
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
        return _to_rgb(_upright(image))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{name} is a damaged or truncated {kind.upper()} image ({e})",
                         "re-save or re-scan it; the file ends before its pixels do") from e


def check_pixels(width: int, height: int, name: str, limits: MediaConfig) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{name} has no pixels ({width} x {height})", "check the file")
    if width * height > limits.max_pixels:
        raise InputError(f"{name} is {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} MP), over the "
                         f"{limits.max_pixels / 1e6:,.0f} MP limit (a decompression bomb, or a scan at too high a resolution)",
                         "scale it down (300 dpi is plenty for text), or raise media.max_pixels in the serve config")


def _upright(image):
    """Phone photos are stored sideways with an EXIF orientation tag; turn the pixels the way the
    camera meant (viewers do, and OCR reads upright lines best)."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except (ValueError, OSError, SyntaxError, TypeError):
        return image  # a broken EXIF block: keep the pixels as stored


def _to_rgb(image):
    """Transparent pixels become white, as on paper (black text on a transparent PNG stays readable)."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit and float scans: scale to 8 bits first
        import numpy as np

        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGB", rgba.size, "white")
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    return image.convert("RGB")

"""Images and scans in (issue 31): decoding with limits (images.py), OCR engines (ocr.py), reading
order (layout.py), images and PDFs to pages with provenance and a cache (pages.py).

    from loom.media import read_pages, IMAGE_TYPES
    pages = read_pages(Path("scan.pdf").read_bytes(), "scan.pdf")   # [Page(number, source, paragraphs)]

Heavy pieces (rapidocr, onnxruntime, pypdfium2, Pillow) are imported inside the functions that use
them, so importing loom.media costs nothing."""

from loom.media.images import IMAGE_TYPES, configure, decode_image, settings, sniff
from loom.media.pages import Page, inspect, page_count, preview, read_pages

__all__ = ["IMAGE_TYPES", "Page", "configure", "decode_image", "inspect", "page_count", "preview", "read_pages", "settings", "sniff"]

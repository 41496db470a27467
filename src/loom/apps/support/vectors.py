"""The dense index: exact inner-product search over fp16-stored vectors (faiss
IndexScalarQuantizer QT_fp16: the scan reads half the bytes of fp32, and at 100k x 384 the scan is
memory-bound, so that halves query time; scores keep full recall).

Built from the KB's SQLite embeddings when first needed and rebuilt whenever the KB changes
(~0.1 s per 100k vectors). faiss runs single-threaded here: its OpenMP threads would otherwise
spin against torch's, which embeds the query on the same 2 cores."""

from __future__ import annotations

import numpy as np


class DenseIndex:
    def __init__(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        self.ids = ids
        self.size = len(ids)
        self._index = None
        self._matrix = matrix
        if self.size:
            try:
                import faiss
            except ImportError:  # exact numpy/torch search still works, only slower at 100k+ chunks
                return
            faiss.omp_set_num_threads(1)
            dim = matrix.shape[1]
            index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
            index.add(np.ascontiguousarray(matrix, dtype=np.float32))
            self._index, self._matrix = index, None

    def search(self, q: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """[(chunk id, cosine similarity)] best first; q is a normalised [dim] vector."""
        if self.size == 0:
            return []
        k = min(limit, self.size)
        if self._index is not None:
            scores, rows = self._index.search(q.reshape(1, -1).astype(np.float32), k)
            return [(int(self.ids[r]), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]
        import torch

        sims = torch.from_numpy(self._matrix) @ torch.from_numpy(q.astype(np.float32))
        values, best = torch.topk(sims, k)
        return [(int(self.ids[i]), float(v)) for i, v in zip(best.tolist(), values.tolist())]

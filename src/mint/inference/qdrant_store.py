"""An index's vectors in Qdrant: a server or cluster (`qdrant://HOST:PORT/COLLECTION`) or the embedded
local mode (`qdrant-local:///DIR/COLLECTION`, one process at a time), for indexes that outgrow one machine.

Each slot is a point (id = slot) with two named vectors: `mean`, the clip's mean query embedding (dense,
cosine, in Qdrant's HNSW index), and `queries`, its `Nq` query embeddings as a multivector compared by
MaxSim (float32, kept out of the HNSW graph). A search asks the same two stages as the built-in store in
one request: `candidates` points by the mean, re-scored by MaxSim. Qdrant's MaxSim sums over the query's
rows; dividing by their number gives the built-in's mean. The SQLite file stays the metadata store:
Qdrant holds vectors only, and a point that no clip owns (a dead writer's, or a forgotten one whose
delete was lost) is dropped by the index when it comes up.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from mint.errors import ConfigError, DataError

MEAN, QUERIES = "mean", "queries"
_UPSERT_POINTS = 256


def _client_and_collection(location: str):
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise ConfigError(
            f"--vectors {location}: qdrant-client is not installed; pip install 'mint-audio[qdrant]'"
        ) from None
    parts = urlsplit(location)
    path = Path(parts.path)
    if parts.scheme == "qdrant-local":
        if parts.netloc or not path.is_absolute() or not path.name:
            raise ConfigError(f"--vectors {location}: expected qdrant-local:///ABSOLUTE/DIR/COLLECTION")
        path.parent.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(path.parent)), path.name
    if not parts.hostname or len(path.parts) != 2:
        raise ConfigError(f"--vectors {location}: expected qdrant://HOST:PORT/COLLECTION")
    return QdrantClient(host=parts.hostname, port=parts.port or 6333), path.name


class QdrantVectorStore:
    def __init__(self, location: str, num_queries: int, embed_dim: int) -> None:
        self.location = location
        self.num_queries = num_queries
        self.embed_dim = embed_dim
        self._client, self.collection = _client_and_collection(location)

    def clear(self) -> None:
        from qdrant_client import models

        if self._client.collection_exists(self.collection):
            self._client.delete_collection(self.collection)
        self._client.create_collection(
            self.collection,
            vectors_config={
                MEAN: models.VectorParams(size=self.embed_dim, distance=models.Distance.COSINE),
                QUERIES: models.VectorParams(
                    size=self.embed_dim,
                    distance=models.Distance.DOT,
                    multivector_config=models.MultiVectorConfig(
                        comparator=models.MultiVectorComparator.MAX_SIM
                    ),
                    hnsw_config=models.HnswConfigDiff(m=0),  # re-scoring only: no graph over the multivectors
                ),
            },
        )

    def _check(self) -> None:
        if not self._client.collection_exists(self.collection):
            raise DataError(f"{self.location}: no such collection; build the index again with --rebuild")

    def write(self, start: int, embeddings: np.ndarray) -> None:
        from qdrant_client import models

        self._check()
        embeddings = np.asarray(embeddings, dtype=np.float32)
        points = [
            models.PointStruct(
                id=start + offset, vector={MEAN: clip.mean(axis=0).tolist(), QUERIES: clip.tolist()}
            )
            for offset, clip in enumerate(embeddings)
        ]
        for first in range(0, len(points), _UPSERT_POINTS):
            self._client.upsert(self.collection, points[first : first + _UPSERT_POINTS], wait=True)

    def forget(self, slots: np.ndarray) -> None:
        from qdrant_client import models

        if len(slots):
            selector = models.PointIdsList(points=[int(slot) for slot in slots])
            self._client.delete(self.collection, points_selector=selector, wait=True)

    def refresh(self, live: np.ndarray, generation: int) -> None:
        pass  # Qdrant keeps its own indexes up to date

    def save(self) -> None:
        pass

    def search(
        self, query: np.ndarray, count: int, candidates: int, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray]:
        # `nprobe` has no Qdrant counterpart: its HNSW index over the means is searched as configured.
        from qdrant_client import models

        self._check()
        query = np.asarray(query, dtype=np.float32)
        found = self._client.query_points(
            self.collection,
            prefetch=models.Prefetch(
                query=query.mean(axis=0).tolist(), using=MEAN, limit=max(candidates, count)
            ),
            query=query.tolist(),
            using=QUERIES,
            limit=max(candidates, count),
        ).points
        slots = np.array([point.id for point in found], dtype=np.int64)
        return slots, np.array([point.score for point in found], dtype=np.float64) / len(query)

    def close(self) -> None:
        self._client.close()

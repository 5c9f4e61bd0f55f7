"""Vector stores for embedding migration: FAISS indexes, LanceDB tables, numpy files.

One small interface over the places embeddings live, so a store embedded by
a legacy model can be translated into a new model's space out of core,
chunk by chunk, ids and metadata kept (:func:`migrate_store`):

* :func:`open_store` opens an existing store as a source: ``.faiss`` /
  ``.index`` files (FAISS flat, IVF-flat and HNSW-flat indexes, inner
  product or L2, optionally wrapped in ``IndexIDMap``/``IndexIDMap2``),
  LanceDB tables given as ``DB_DIR/TABLE.lance`` (embedded, no server) and
  ``.npy`` / ``.npz`` embedding files (a ``.npy`` destination keeps custom
  ids in ``NAME.ids.npy`` beside it);
* every store reads ``(ids, vectors, metadata)`` chunks
  (:meth:`VectorStore.read_chunks`), looks rows up by id
  (:meth:`VectorStore.get`) and answers k-nearest-neighbour queries
  (:meth:`VectorStore.search`);
* a migration writes its destination under a temporary name next to it and
  renames it into place only when every chunk is written, so a migration
  killed midway never leaves a half-written destination (an existing one is
  untouched) and is simply run again; with ``resume=True`` a LanceDB or
  ``.npy`` destination continues from the chunks already written (a FAISS
  index, built in memory, restarts).

FAISS (``pip install sklearn-latent[faiss]``) and LanceDB
(``pip install sklearn-latent[lancedb]``) are imported only when used.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FaissStore",
    "LanceStore",
    "NumpyStore",
    "StoreChunk",
    "VectorStore",
    "migrate_store",
    "open_store",
]

#: Metrics of a store: inner product (FAISS ``METRIC_INNER_PRODUCT``), cosine
#: (inner product of unit vectors) and L2.
STORE_METRICS = ("ip", "cosine", "l2")
#: Rows per chunk read, translated and written by default (96 MiB of 384-d float32).
DEFAULT_CHUNK_SIZE = 65_536
#: Suffix of the temporary destination a migration writes before renaming it.
PARTIAL_SUFFIX = ".partial"


def _require(module, extra, what):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs {module}: pip install sklearn-latent[{extra}]"
        ) from exc


@dataclass
class StoreChunk:
    """Consecutive rows of a store.

    Attributes
    ----------
    ids : ndarray of shape (m,)
        Row ids (int64 for FAISS; any dtype in LanceDB).
    vectors : ndarray of float32, shape (m, dim)
    metadata : pyarrow.Table or None
        The other columns of these rows (LanceDB), else None.
    """

    ids: np.ndarray
    vectors: np.ndarray
    metadata: object = None


class VectorStore:
    """Interface of a vector store: chunked reading, lookup by id, search.

    Attributes
    ----------
    path : pathlib.Path
    n_rows : int
    dim : int
    metric : {"ip", "cosine", "l2"} or None
        The store's similarity (None where the store does not record one).
    """

    kind = None

    def read_chunks(self, chunk_size=DEFAULT_CHUNK_SIZE):
        """Iterate over :class:`StoreChunk` of at most ``chunk_size`` rows, in store order."""
        raise NotImplementedError

    def ids(self):
        """All ids, in store order."""
        return np.concatenate([c.ids for c in self.read_chunks()])

    def get(self, ids, chunk_size=DEFAULT_CHUNK_SIZE):
        """Vectors of the rows with these ids, in the order given (one pass over the store).

        Raises ``KeyError`` naming ids that are absent.
        """
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1-D; got shape {ids.shape}.")
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        if sorted_ids.size > 1 and (sorted_ids[1:] == sorted_ids[:-1]).any():
            raise ValueError("ids must not repeat.")
        out = np.empty((ids.size, self.dim), dtype=np.float32)
        found = np.zeros(ids.size, dtype=bool)
        for chunk in self.read_chunks(chunk_size):
            pos = np.searchsorted(sorted_ids, chunk.ids).clip(0, max(ids.size - 1, 0))
            hit = sorted_ids[pos] == chunk.ids if ids.size else np.zeros(len(chunk.ids), bool)
            out[order[pos[hit]]] = chunk.vectors[hit]
            found[order[pos[hit]]] = True
        if not found.all():
            missing = ids[~found][:5].tolist()
            raise KeyError(f"{(~found).sum()} id(s) not in {self.path}, first: {missing}")
        return out

    def search(self, queries, k=10):
        """``(scores, ids)`` of the ``k`` nearest rows of each query, by the store's own search."""
        raise NotImplementedError

    def __repr__(self):
        return (
            f"{type(self).__name__}({str(self.path)!r}, n_rows={self.n_rows}, dim={self.dim}, "
            f"metric={self.metric!r})"
        )


# --------------------------------------------------------------------------
# numpy files
# --------------------------------------------------------------------------
class NumpyStore(VectorStore):
    """A ``.npy`` file of vectors or a ``.npz`` with ``vectors`` and ``ids``.

    The ids of ``NAME.npy`` are those of ``NAME.ids.npy`` beside it when
    that file exists (a migration into a ``.npy`` file writes it when the
    source's ids are not the row numbers), else the row numbers.  ``.npy``
    files are memory-mapped, so reading is bounded by the chunk.
    """

    kind = "numpy"

    def __init__(self, path, metric=None):
        self.path = Path(path)
        self.metric = metric
        if self.path.suffix == ".npz":
            with np.load(self.path) as z:
                if "vectors" not in z:
                    raise ValueError(f"{self.path} has no array 'vectors' (keys: {z.files}).")
                self._vectors = z["vectors"]
                self._ids = z["ids"] if "ids" in z else None
        else:
            self._vectors = np.load(self.path, mmap_mode="r")
            ids_path = _ids_path(self.path)
            self._ids = np.load(ids_path) if ids_path.exists() else None
        if self._vectors.ndim != 2:
            raise ValueError(f"{self.path} must hold a 2-D array; got {self._vectors.shape}.")
        self.n_rows, self.dim = self._vectors.shape
        if self._ids is not None and self._ids.shape != (self.n_rows,):
            raise ValueError(
                f"{self.path}: ids has shape {self._ids.shape}, vectors {self._vectors.shape}."
            )

    def _npy_layout(self):
        """(data offset, dtype) of a C-ordered .npy file, else None."""
        if self.path.suffix == ".npz":
            return None
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            _, fortran, dtype = read(f)
            return (None if fortran or dtype.hasobject else (f.tell(), dtype))

    def read_chunks(self, chunk_size=DEFAULT_CHUNK_SIZE):
        layout = self._npy_layout()
        # plain reads rather than the memmap: pages of a mapped file would stay
        # in the process's resident memory, which would grow with the store
        f = open(self.path, "rb") if layout else None
        try:
            for start in range(0, self.n_rows, chunk_size):
                stop = min(start + chunk_size, self.n_rows)
                ids = np.arange(start, stop) if self._ids is None else self._ids[start:stop]
                if f is None:
                    block = self._vectors[start:stop]
                else:
                    offset, dtype = layout
                    f.seek(offset + start * self.dim * dtype.itemsize)
                    block = np.fromfile(f, dtype=dtype, count=(stop - start) * self.dim)
                    block = block.reshape(stop - start, self.dim)
                yield StoreChunk(ids, np.asarray(block, dtype=np.float32))
        finally:
            if f is not None:
                f.close()

    def ids(self):
        return np.arange(self.n_rows) if self._ids is None else self._ids

    def search(self, queries, k=10):
        from .metrics import search_top_k

        metric = {"ip": "dot", "l2": "euclidean", None: "cosine"}.get(self.metric, self.metric)
        scores, rows = search_top_k(np.asarray(queries, np.float32), self._vectors, k,
                                    metric=metric)
        return scores, np.asarray(self.ids())[rows]


def _ids_path(path):
    """``NAME.ids.npy`` beside ``NAME.npy``: the ids of a ``.npy`` store."""
    path = Path(path)
    return path.with_name(path.stem + ".ids.npy")


def _npy_offset(path):
    """Byte offset of the data of a ``.npy`` file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        (np.lib.format.read_array_header_1_0 if version == (1, 0)
         else np.lib.format.read_array_header_2_0)(f)
        return f.tell()


class _NumpyWriter:
    """Writes translated chunks into a preallocated ``.npy`` file, with a progress file.

    Rows go to their place by plain positioned writes (not a memory map,
    whose dirty pages would stay in the process's resident memory and grow
    with the store).  After each chunk the vectors and ids are flushed to
    the operating system and then the progress file (rows done) is replaced
    atomically, so a killed run leaves a partial whose progress never counts
    a row that was not written.
    """

    def __init__(self, path, dim, n_rows, source):
        self.path, self.dim, self.n_rows, self.source = Path(path), dim, n_rows, str(source)
        self._files = None
        self._pos = 0

    @staticmethod
    def partial_files(tmp):
        return tmp, _ids_path(tmp), tmp.with_name(tmp.stem + ".json")

    def _state(self):
        return {"source": self.source, "n_rows": self.n_rows, "dim": self.dim,
                "rows_done": self._pos}

    def _save_state(self):
        import json

        progress = self.partial_files(self._tmp)[2]
        scratch = progress.with_name(progress.name + ".tmp")
        scratch.write_text(json.dumps(self._state()))
        os.replace(scratch, progress)

    def _open_files(self):
        vec_path, ids_path, _ = self.partial_files(self._tmp)
        self._files = [(open(p, "r+b"), _npy_offset(p)) for p in (vec_path, ids_path)]

    def open(self, tmp, resume):
        """Start a new partial, or reopen a leftover one; returns the rows already written."""
        import json

        self._tmp = tmp
        self.close()
        vec_path, ids_path, progress = self.partial_files(tmp)
        if resume and progress.exists() and vec_path.exists() and ids_path.exists():
            try:
                state = json.loads(progress.read_text())
            except ValueError:
                state = None
            if state is not None and {k: state.get(k) for k in ("source", "n_rows", "dim")} == {
                k: v for k, v in self._state().items() if k != "rows_done"
            }:
                self._pos = int(state["rows_done"])
                self._open_files()
                return self._pos
        for p in (vec_path, ids_path, progress):
            _remove(p)
        for p, dtype, shape in ((vec_path, np.float32, (self.n_rows, self.dim)),
                                (ids_path, np.int64, (self.n_rows,))):
            with open(p, "wb") as f:  # the header, then a sparse file of the full size
                np.lib.format.write_array_header_2_0(
                    f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                        "fortran_order": False, "shape": shape})
                f.truncate(f.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize)
        self._pos = 0
        self._open_files()
        self._save_state()
        return 0

    def first(self):
        """(id, vector) of the first row written, or None."""
        if not self._pos:
            return None
        vec_path, ids_path, _ = self.partial_files(self._tmp)
        return (np.load(ids_path, mmap_mode="r")[0].copy(),
                np.array(np.load(vec_path, mmap_mode="r")[0]))

    def write(self, chunk):
        ids = np.asarray(chunk.ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"a .npy destination needs integer ids; got ids of dtype {ids.dtype}.")
        stop = self._pos + len(ids)
        if stop > self.n_rows:
            raise ValueError(f"the source yielded more than its {self.n_rows} rows.")
        for (f, offset), block, row_bytes in (
            (self._files[0], np.ascontiguousarray(chunk.vectors, np.float32), self.dim * 4),
            (self._files[1], np.ascontiguousarray(ids, np.int64), 8),
        ):
            f.seek(offset + self._pos * row_bytes)
            f.write(block.tobytes())
            f.flush()
        self._pos = stop
        self._save_state()

    def close(self):
        for f, _ in self._files or ():
            f.close()
        self._files = None

    def commit(self, tmp):
        self.close()
        if self._pos != self.n_rows:
            raise ValueError(f"the source yielded {self._pos} rows, not {self.n_rows}.")
        _, ids_path, progress = self.partial_files(tmp)
        _remove(progress)
        if np.array_equal(np.load(ids_path, mmap_mode="r"), np.arange(self.n_rows)):
            _remove(ids_path)

    def install(self, tmp, destination):
        """Move the ids file into place, then the vectors (the commit point)."""
        _, ids_path, _ = self.partial_files(tmp)
        _remove(_ids_path(destination))
        if ids_path.exists():
            os.replace(ids_path, _ids_path(destination))
        os.replace(tmp, destination)


# --------------------------------------------------------------------------
# FAISS
# --------------------------------------------------------------------------
def _faiss():
    return _require("faiss", "faiss", "reading or writing FAISS indexes")


class FaissStore(VectorStore):
    """A FAISS index file: flat, IVF-flat or HNSW-flat, inner product or L2.

    Flat indexes are memory-mapped (``IO_FLAG_MMAP_IFC``) where FAISS allows,
    so reading them is bounded by the chunk; IVF and HNSW indexes are loaded.
    Custom ids come from an ``IndexIDMap``/``IndexIDMap2`` wrapper or from
    the IVF inverted lists; otherwise ids are row numbers.

    Attributes
    ----------
    index_type : {"flat", "ivf", "hnsw"}
    params : dict
        ``nlist`` / ``nprobe`` (IVF) or ``M`` / ``ef_construction`` /
        ``ef_search`` (HNSW): used to build a destination of the same type.
    """

    kind = "faiss"

    def __init__(self, path, index=None):
        faiss = _faiss()
        self.path = Path(path)
        if index is None:
            flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
            try:
                index = faiss.read_index(str(self.path), flag) if flag else None
            except RuntimeError:
                index = None
            if index is None:
                try:
                    index = faiss.read_index(str(self.path))
                except RuntimeError as exc:
                    msg = str(exc).strip().splitlines()[-1]
                    raise ValueError(f"cannot read {self.path} as a FAISS index: {msg}") from None
        self._index = index
        index = faiss.downcast_index(index)
        self._id_map = None
        if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            self._id_map = faiss.vector_to_array(index.id_map)
            index = faiss.downcast_index(index.index)
        self._inner = index
        self.n_rows, self.dim = int(self._index.ntotal), int(self._index.d)
        self.metric = {faiss.METRIC_INNER_PRODUCT: "ip", faiss.METRIC_L2: "l2"}.get(
            self._index.metric_type
        )
        if self.metric is None:
            raise ValueError(f"{self.path}: FAISS metric type {self._index.metric_type} is "
                             "not supported (inner product or L2).")
        if isinstance(index, faiss.IndexIVFFlat):
            self.index_type = "ivf"
            self.params = {"nlist": int(index.nlist), "nprobe": int(index.nprobe)}
        elif isinstance(index, faiss.IndexHNSWFlat):
            cum = faiss.vector_to_array(index.hnsw.cum_nneighbor_per_level)
            self.index_type = "hnsw"
            self.params = {"M": int(cum[2] - cum[1]) if cum.size > 2 else int(cum[1] // 2),
                           "ef_construction": int(index.hnsw.efConstruction),
                           "ef_search": int(index.hnsw.efSearch)}
        elif isinstance(index, faiss.IndexFlat):
            self.index_type, self.params = "flat", {}
        else:
            raise ValueError(
                f"{self.path}: FAISS index type {type(index).__name__} is not supported "
                "(IndexFlat, IndexIVFFlat, IndexHNSWFlat, optionally in IndexIDMap/IndexIDMap2): "
                "its vectors are compressed and cannot be read back exactly."
            )

    def _flat_chunks(self, chunk_size):
        for start in range(0, self.n_rows, chunk_size):
            m = min(chunk_size, self.n_rows - start)
            vectors = self._inner.reconstruct_n(start, m)
            ids = (np.arange(start, start + m) if self._id_map is None
                   else self._id_map[start : start + m])
            yield StoreChunk(np.asarray(ids, dtype=np.int64), vectors)

    def _ivf_chunks(self, chunk_size):
        faiss = _faiss()
        inv, d = self._inner.invlists, self.dim
        for lst in range(self._inner.nlist):
            n = inv.list_size(lst)
            if n == 0:
                continue
            ids = faiss.rev_swig_ptr(inv.get_ids(lst), n).copy()
            codes = faiss.rev_swig_ptr(inv.get_codes(lst), n * self._inner.code_size)
            vectors = codes.copy().view(np.float32).reshape(n, d)
            if self._id_map is not None:
                ids = self._id_map[ids]
            for s in range(0, n, chunk_size):
                yield StoreChunk(ids[s : s + chunk_size].astype(np.int64),
                                 vectors[s : s + chunk_size])

    def read_chunks(self, chunk_size=DEFAULT_CHUNK_SIZE):
        if self.index_type == "ivf":
            return self._ivf_chunks(chunk_size)
        return self._flat_chunks(chunk_size)

    def ids(self):
        if self.index_type != "ivf":
            return np.arange(self.n_rows) if self._id_map is None else self._id_map.copy()
        return super().ids()

    def search(self, queries, k=10):
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.index_type == "ivf":
            self._inner.nprobe = self.params["nprobe"]
        scores, rows = self._index.search(queries, k)
        return scores, rows


class _FaissWriter:
    """Adds translated chunks to a new FAISS index and writes it at commit."""

    def __init__(self, path, dim, metric, index_type="flat", params=None, train_rows=None):
        faiss = _faiss()
        self.path, self.dim, self.index_type = Path(path), dim, index_type
        self.params = dict(params or {})
        mt = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if index_type == "flat":
            index = faiss.IndexFlat(dim, mt)
        elif index_type == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.params.get("M", 32), mt)
            index.hnsw.efConstruction = self.params.get("ef_construction", 40)
            index.hnsw.efSearch = self.params.get("ef_search", 16)
        elif index_type == "ivf":
            nlist = self.params.get("nlist", 100)
            self._quantizer = faiss.IndexFlat(dim, mt)
            index = faiss.IndexIVFFlat(self._quantizer, dim, nlist, mt)
            index.nprobe = self.params.get("nprobe", 1)
        else:
            raise ValueError(f"index_type={index_type!r}; expected 'flat', 'ivf' or 'hnsw'.")
        self._index = index if index_type == "ivf" else faiss.IndexIDMap2(index)
        self._pending, self._n_pending = [], 0
        # IVF centroids are trained on the first rows (FAISS asks for ~39 per list)
        self._train_rows = train_rows or 40 * self.params.get("nlist", 100)

    def open(self, tmp, resume):
        """A FAISS index is built in memory: a leftover cannot be continued, restart."""
        _remove(tmp)
        return 0

    def _add(self, ids, vectors):
        self._index.add_with_ids(np.ascontiguousarray(vectors, np.float32),
                                 np.ascontiguousarray(ids, np.int64))

    def write(self, chunk):
        if not np.issubdtype(np.asarray(chunk.ids).dtype, np.integer):
            raise TypeError(f"FAISS needs integer ids; got ids of dtype {chunk.ids.dtype}.")
        if self._index.is_trained:
            self._add(chunk.ids, chunk.vectors)
            return
        self._pending.append(chunk)
        self._n_pending += len(chunk.ids)
        if self._n_pending >= self._train_rows:
            self._flush()

    def _flush(self):
        if not self._pending:
            return
        ids = np.concatenate([c.ids for c in self._pending])
        vectors = np.concatenate([c.vectors for c in self._pending])
        self._pending = []
        if not self._index.is_trained:
            self._index.train(np.ascontiguousarray(vectors, np.float32))
        self._add(ids, vectors)

    def commit(self, tmp):
        self._flush()
        _faiss().write_index(self._index, str(tmp))


# --------------------------------------------------------------------------
# LanceDB
# --------------------------------------------------------------------------
def _split_lance_path(path):
    path = Path(path)
    if path.suffix != ".lance":
        raise ValueError(f"a LanceDB table is given as DB_DIR/TABLE.lance; got {str(path)!r}.")
    return path.parent, path.stem


class LanceStore(VectorStore):
    """A LanceDB table ``DB_DIR/TABLE.lance`` (embedded, local; no server).

    The vectors are the fixed-size-list column ``vector_column``; ids the
    ``id_column`` (row numbers when the table has none); every other column
    is metadata, carried along by a migration.
    """

    kind = "lancedb"

    def __init__(self, path, *, vector_column="vector", id_column="id", metric=None):
        lancedb = _require("lancedb", "lancedb", "reading or writing LanceDB tables")
        self.path = Path(path)
        db_dir, name = _split_lance_path(self.path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"no LanceDB table at {self.path}")
        self._table = lancedb.connect(str(db_dir)).open_table(name)
        schema = self._table.schema
        if vector_column not in schema.names:
            raise ValueError(
                f"{self.path} has no vector column {vector_column!r} (columns: {schema.names})."
            )
        self.vector_column = vector_column
        self.id_column = id_column if id_column in schema.names else None
        self.dim = int(schema.field(vector_column).type.list_size)
        self.n_rows = int(self._table.count_rows())
        self.metric = metric
        self.metadata_columns = [
            c for c in schema.names if c not in (vector_column, self.id_column)
        ]

    def read_chunks(self, chunk_size=DEFAULT_CHUNK_SIZE):
        start = 0
        for batch in self._table.search().to_batches(chunk_size):
            for s in range(0, batch.num_rows, chunk_size):
                b = batch.slice(s, chunk_size)
                vec = b.column(self.vector_column)
                vectors = vec.values.to_numpy(zero_copy_only=False).astype(np.float32)
                vectors = vectors[vec.offset * self.dim :][: len(b) * self.dim]
                vectors = vectors.reshape(len(b), self.dim)
                ids = (np.arange(start, start + len(b)) if self.id_column is None
                       else b.column(self.id_column).to_numpy(zero_copy_only=False))
                meta = b.select(self.metadata_columns) if self.metadata_columns else None
                start += len(b)
                yield StoreChunk(ids, vectors, meta)

    def search(self, queries, k=10):
        metric = {"ip": "dot", "l2": "l2", "cosine": "cosine", None: "cosine"}[self.metric]
        scores, ids = [], []
        for q in np.asarray(queries, dtype=np.float32):
            res = (self._table.search(q, vector_column_name=self.vector_column)
                   .distance_type(metric).limit(k).to_arrow())
            scores.append(res.column("_distance").to_numpy())
            ids.append(res.column(self.id_column).to_numpy() if self.id_column
                       else np.full(len(res), -1))
        return np.stack(scores), np.stack(ids)


class _LanceWriter:
    def __init__(self, path, dim, vector_column="vector", id_column="id"):
        self.lancedb = _require("lancedb", "lancedb", "writing LanceDB tables")
        self.path, self.dim = Path(path), dim
        self.vector_column, self.id_column = vector_column, id_column
        self._table = None

    def open(self, tmp, resume):
        """Connect; reopen a leftover partial table with ``resume``. Returns the rows in it.

        Each chunk is one LanceDB ``add``, an atomic commit of a new table
        version, so a killed run leaves a table of whole chunks.
        """
        db_dir, name = _split_lance_path(tmp)
        self._db, self._name, self._table = self.lancedb.connect(str(db_dir)), name, None
        if resume and tmp.is_dir():
            try:
                self._table = self._db.open_table(name)
                return int(self._table.count_rows())
            except Exception:  # an unreadable leftover (killed before its first commit)
                self._table = None
        _remove(tmp)
        return 0

    def first(self):
        if self._table is None or self._table.count_rows() == 0:
            return None
        row = self._table.head(1)
        vec = row.column(self.vector_column).combine_chunks()
        return (row.column(self.id_column)[0].as_py(),
                vec.values.to_numpy(zero_copy_only=False)[: self.dim].astype(np.float32))

    def write(self, chunk):
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(chunk.vectors, np.float32).reshape(-1))
        columns = {self.id_column: pa.array(chunk.ids),
                   self.vector_column: pa.FixedSizeListArray.from_arrays(flat, self.dim)}
        table = pa.table(columns)
        if chunk.metadata is not None:
            for name in chunk.metadata.column_names:
                table = table.append_column(name, chunk.metadata.column(name))
        if self._table is None:
            self._table = self._db.create_table(self._name, table)
        else:
            self._table.add(table)

    def commit(self, tmp):
        if self._table is None:
            raise ValueError("the source store is empty: nothing to write.")


# --------------------------------------------------------------------------
# opening and migrating
# --------------------------------------------------------------------------
def _kind_of(path, kind=None):
    if kind is not None:
        if kind not in ("faiss", "lancedb", "numpy"):
            raise ValueError(f"kind={kind!r}; expected 'faiss', 'lancedb' or 'numpy'.")
        return kind
    suffix = Path(path).suffix.lower()
    if suffix in (".faiss", ".index"):
        return "faiss"
    if suffix == ".lance":
        return "lancedb"
    if suffix in (".npy", ".npz"):
        return "numpy"
    raise ValueError(
        f"cannot tell the store kind of {str(path)!r}: use a .faiss/.index file (FAISS), "
        "a DB_DIR/TABLE.lance table (LanceDB) or a .npy/.npz file, or pass kind=."
    )


def open_store(path, *, kind=None, **options):
    """Open an existing vector store by its path.

    Parameters
    ----------
    path : str or path-like
        ``*.faiss`` / ``*.index`` (FAISS), ``DB_DIR/TABLE.lance`` (LanceDB),
        ``*.npy`` / ``*.npz`` (numpy; ``vectors`` and optional ``ids``).
    kind : {"faiss", "lancedb", "numpy"} or None
        Overrides the guess from the suffix.
    **options
        ``vector_column``, ``id_column``, ``metric`` for LanceDB; ``metric``
        for numpy.

    Returns
    -------
    VectorStore

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_latent.stores import open_store
    >>> path = os.path.join(tempfile.mkdtemp(), "emb.npy")
    >>> np.save(path, np.ones((5, 3), dtype=np.float32))
    >>> store = open_store(path)
    >>> store.n_rows, store.dim, [c.ids.tolist() for c in store.read_chunks(3)]
    (5, 3, [[0, 1, 2], [3, 4]])
    """
    kind = _kind_of(path, kind)
    if not Path(path).exists():
        raise FileNotFoundError(f"no store at {path}")
    if kind == "faiss":
        return FaissStore(path)
    if kind == "lancedb":
        return LanceStore(path, **options)
    return NumpyStore(path, **options)


def _unit_norm(vectors):
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return bool(np.all(np.abs(norms - 1.0) < 1e-3))


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _progress(total, enabled, desc):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        return None
    return tqdm(total=total, desc=desc, unit="row", unit_scale=True)


def _skip_rows(chunks, n_skip):
    """The chunks after the first ``n_skip`` rows (a chunk straddling the boundary is sliced)."""
    for chunk in chunks:
        m = len(chunk.ids)
        if n_skip >= m:
            n_skip -= m
            continue
        if n_skip:
            meta = None if chunk.metadata is None else chunk.metadata.slice(n_skip)
            chunk = StoreChunk(chunk.ids[n_skip:], chunk.vectors[n_skip:], meta)
            n_skip = 0
        yield chunk


def migrate_store(
    source,
    destination,
    translator,
    *,
    kind=None,
    metric=None,
    index_type=None,
    index_params=None,
    normalize="auto",
    chunk_size=DEFAULT_CHUNK_SIZE,
    overwrite=False,
    resume=False,
    progress=False,
):
    """Translate every vector of a store into a new model's space and write a new store.

    Reads ``source`` chunk by chunk, applies ``translator.transform`` (a
    fitted translator legacy -> new, e.g.
    :class:`~sklearn_latent.ProcrustesTranslator`), and writes the
    translated vectors with the same ids (and LanceDB metadata columns) to
    ``destination``.  Memory is one chunk plus what the destination keeps in
    memory (a FAISS index is built in memory and written at the end; a
    LanceDB table is appended to on disk chunk by chunk; a ``.npy`` file is
    written through a memory map).

    The destination is written as a partial store beside it
    (``NAME.faiss.partial``, ``TABLE.partial.lance``, ``NAME.partial.npy``)
    and renamed into place only after the last chunk, so an interrupted
    migration (exception, kill) never leaves a half-written destination, and
    an existing destination stays intact until the new one is complete.
    The next run replaces the leftover partial, or, with ``resume=True``,
    continues it: a LanceDB table holds whole chunks (one atomic commit
    each) and a ``.npy`` partial records the rows flushed after each chunk,
    so only the rest of the source is translated.  A FAISS index is built in
    memory and written once, so a FAISS destination always restarts.

    Parameters
    ----------
    source : VectorStore or path
        See :func:`open_store`.
    destination : path
        ``*.faiss`` / ``*.index``, ``DB_DIR/TABLE.lance`` or ``*.npy``
        (vectors; custom integer ids go to ``NAME.ids.npy`` beside it;
        LanceDB metadata columns are not kept).
    translator : fitted transformer
        ``transform`` maps ``(m, source.dim)`` to ``(m, d_new)``.
    kind : {"faiss", "lancedb", "numpy"} or None
        Destination kind (default: from its suffix).
    metric : {"ip", "cosine", "l2"} or None
        Destination metric (default: the source's; ``"cosine"`` is written
        as inner product of normalized vectors in FAISS).
    index_type : {"flat", "ivf", "hnsw"} or None
        FAISS destination type (default: the source's when it is FAISS, else flat).
    index_params : dict or None
        ``nlist``, ``nprobe`` (IVF), ``M``, ``ef_construction``,
        ``ef_search`` (HNSW); default: the source's.
    normalize : {"auto", True, False}, default="auto"
        Scale translated vectors to unit norm; ``"auto"``: when the metric is
        ``"cosine"``, or ``"ip"`` with unit-norm source vectors (checked on
        the first chunk).
    chunk_size : int, default=65536
    overwrite : bool, default=False
        Replace an existing destination (only once the new one is complete).
    resume : bool, default=False
        Continue a leftover partial LanceDB or ``.npy`` destination of an
        interrupted run instead of starting over.  The leftover is checked
        against this run (same source size and width, same first id, and its
        first vector equal to this translator's output); one that does not
        match is replaced, with a warning.
    progress : bool, default=False
        A tqdm progress bar when tqdm is installed.

    Returns
    -------
    VectorStore
        The destination, opened.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_latent import ProcrustesTranslator
    >>> from sklearn_latent.stores import migrate_store, open_store
    >>> rng = np.random.default_rng(0)
    >>> old, new = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    >>> folder = tempfile.mkdtemp()
    >>> np.save(os.path.join(folder, "old.npy"), old.astype(np.float32))
    >>> t = ProcrustesTranslator().fit(old[:100], new[:100])
    >>> store = migrate_store(os.path.join(folder, "old.npy"),
    ...                       os.path.join(folder, "new.npy"), t, chunk_size=128)
    >>> store.n_rows, store.dim
    (500, 8)
    """
    if not isinstance(source, VectorStore):
        source = open_store(source)
    if not callable(getattr(translator, "transform", None)):
        raise TypeError(f"translator must be a fitted transformer; got {translator!r}.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive int.")
    if normalize not in ("auto", True, False):
        raise ValueError(f"normalize={normalize!r}; expected 'auto', True or False.")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be a bool; got {resume!r}.")
    metric = metric if metric is not None else source.metric
    if metric is not None and metric not in STORE_METRICS:
        raise ValueError(f"metric={metric!r}; expected one of {STORE_METRICS}.")
    n_in = getattr(translator, "n_features_in_", None)
    if n_in is not None and n_in != source.dim:
        raise ValueError(
            f"the translator expects {n_in}-d vectors but {source.path} holds {source.dim}-d ones."
        )
    destination = Path(destination)
    dest_kind = _kind_of(destination, kind)
    if destination.resolve() == Path(source.path).resolve():
        raise ValueError(f"destination {destination} is the source; write a new store.")
    if dest_kind == "numpy" and destination.suffix != ".npy":
        raise ValueError(f"a numpy destination is a .npy file; got {str(destination)!r}.")
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} exists; pass overwrite=True to replace it.")
    if dest_kind == "faiss":
        tmp = destination.with_name(destination.name + PARTIAL_SUFFIX)
    else:
        tmp = destination.with_name(destination.stem + PARTIAL_SUFFIX + destination.suffix)

    chunks = source.read_chunks(chunk_size)
    first = next(chunks, None)
    if first is None:
        raise ValueError(f"{source.path} is empty: nothing to migrate.")
    if normalize == "auto":
        normalize = metric == "cosine" or (metric == "ip" and _unit_norm(first.vectors))

    def translate(vectors):
        out = np.asarray(translator.transform(vectors), dtype=np.float32)
        if normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0, norms, 1)
        return out

    probe = translate(first.vectors[:1])
    dim = probe.shape[1]
    if dest_kind == "faiss":
        if index_type is None:
            index_type = getattr(source, "index_type", "flat")
        if index_params is None:
            index_params = getattr(source, "params", {}) if source.kind == "faiss" else {}
        writer = _FaissWriter(destination, dim, "l2" if metric == "l2" else "ip",
                              index_type, index_params)
    elif dest_kind == "lancedb":
        writer = _LanceWriter(destination, dim)
    else:
        writer = _NumpyWriter(destination, dim, source.n_rows, Path(source.path).resolve())
    done = writer.open(tmp, resume)
    if done:
        head = writer.first()
        same = (head is not None and np.asarray(head[0]) == np.asarray(first.ids[0])
                and np.allclose(head[1], probe[0], rtol=1e-4, atol=1e-5)
                and done <= source.n_rows)
        if not same:
            import warnings

            warnings.warn(f"{tmp} was left by a migration of another source or translator; "
                          "starting over.", stacklevel=2)
            done = writer.open(tmp, False)
    bar = _progress(source.n_rows, progress, f"migrate {source.path.name}")
    if bar is not None and done:
        bar.update(done)

    def process(chunk):
        writer.write(StoreChunk(chunk.ids, translate(chunk.vectors), chunk.metadata))
        if bar is not None:
            bar.update(len(chunk.ids))

    def all_chunks():
        yield first
        yield from chunks

    try:
        for chunk in _skip_rows(all_chunks(), done):
            process(chunk)
        writer.commit(tmp)
        install = getattr(writer, "install", lambda t, d: os.replace(t, d))
        if destination.exists():  # overwrite: swap only now that the new store is complete
            old = destination.with_name(destination.name + ".old")
            _remove(old)
            os.replace(destination, old)
            install(tmp, destination)
            _remove(old)
        else:
            install(tmp, destination)
    except BaseException:
        if dest_kind == "numpy":
            writer.close()
        if not resume or dest_kind == "faiss":
            for p in (writer.partial_files(tmp) if dest_kind == "numpy" else (tmp,)):
                _remove(p)
        raise
    finally:
        if bar is not None:
            bar.close()
    if dest_kind == "faiss":
        return FaissStore(destination)
    if dest_kind == "numpy":
        return NumpyStore(destination, metric=metric)
    return LanceStore(destination, metric=metric)

"""Read nboost image and caption shards with h5py and numpy only.

    from nboost_shards import iter_shard
    for s in iter_shard("data/labeled/shard-000000.h5"):
        s["id"], s["image"], s["caption"], s["score"], s["source"], s["provenance"]

Each sample is a dict: id (int), image (numpy uint8 HxWx3), caption (str,
decoded from /tokens with the shard's own /vocab; None in image shards),
tokens (list of token ids; None in image shards), score (float; None in
image shards), source (str), objects (the 9 ground-truth cell codes, or
None) and provenance (dict of the shard's /provenance attributes, shared by
its samples). Formats: schemas/image_shard.md, schemas/caption_shard.md.

ShardDataset(paths) is a map-style PyTorch Dataset over one or more shards;
torch is imported only when it is used. The zstd filter must be loadable:
`cmake --install` puts it in HDF5's default plugin folder, or set
HDF5_PLUGIN_PATH=build/plugins.
"""
import h5py
import numpy as np

SCHEMAS = ("nboost.images", "nboost.captions")
_SKIP = {0, 1}   # <pad>, <bos>
_EOS = 2


def _text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _cache(f_path):
    """Opens with a chunk cache that holds at least two /images chunks."""
    with h5py.File(f_path, "r") as f:
        ds = f["images"]
        chunk = int(np.prod(ds.chunks)) if ds.chunks else 0
    return max(2 * chunk, 4 << 20)


def open_shard(path):
    """The shard as an h5py.File, with a chunk cache sized for reading images
    one by one (schemas/image_shard.md, "Chunk size and the chunk cache")."""
    return h5py.File(path, "r", rdcc_nbytes=_cache(path), rdcc_nslots=10007)


def provenance(f):
    """The /provenance attributes as a dict of str ({} in older shards)."""
    g = f.get("provenance")
    return {k: _text(v) for k, v in g.attrs.items()} if g is not None else {}


def vocabulary(f):
    """The words of the token ids (/vocab), or None in shards without it."""
    return [_text(w) for w in f["vocab"][()]] if "vocab" in f else None


def decode(tokens, vocab):
    """Token ids to text as nboost does: words joined by spaces, <pad> and
    <bos> skipped, stopping at <eos>."""
    words = []
    for t in tokens:
        t = int(t)
        if t == _EOS:
            break
        if t not in _SKIP:
            words.append(vocab[t] if t < len(vocab) else "<unk>")
    return " ".join(words)


class _Shard:
    """The per-sample arrays of one open shard, read once."""

    def __init__(self, f, path):
        schema = _text(f.attrs.get("schema", b""))
        if schema not in SCHEMAS:
            raise ValueError(f"{path}: not an nboost shard (schema '{schema}')")
        self.f, self.path = f, path
        self.images = f["images"]
        self.ids = f["ids"][()]
        so = f["source_offsets"][()]
        flat = f["sources"][()].tobytes()
        self.sources = [flat[so[i]:so[i + 1]].decode("utf-8", "replace") for i in range(len(so) - 1)]
        self.objects = f["objects"][()] if "objects" in f else None
        self.captions = schema == "nboost.captions"
        self.prov = provenance(f)
        if self.captions:
            self.vocab = vocabulary(f)
            if self.vocab is None:
                raise ValueError(f"{path}: caption shard without /vocab (written before nboost stored it): "
                                 "decode its /tokens with common/vocab.c's word list")
            self.offsets, self.tokens, self.score = f["offsets"][()], f["tokens"][()], f["score"][()]

    def __len__(self):
        return len(self.ids)

    def sample(self, i, image):
        tokens = caption = score = None
        if self.captions:
            tokens = [int(t) for t in self.tokens[self.offsets[i]:self.offsets[i + 1]]]
            caption, score = decode(tokens, self.vocab), float(self.score[i])
        return {"id": int(self.ids[i]), "image": image, "caption": caption, "tokens": tokens, "score": score,
                "source": self.sources[i],
                "objects": None if self.objects is None else self.objects[i].tolist(),
                "provenance": self.prov}


def _read(ds, lo, hi, path):
    try:
        return ds[lo:hi]
    except OSError as e:
        raise OSError(f"{path}: cannot read /images ({e}); is the zstd plugin installed "
                      "(cmake --install) or HDF5_PLUGIN_PATH set?") from e


def iter_shard(path):
    """Yields one dict per sample of the shard at path, in order. Images are
    read a whole chunk at a time."""
    with open_shard(path) as f:
        s = _Shard(f, path)
        step = s.images.chunks[0] if s.images.chunks else 64
        for lo in range(0, len(s), step):
            block = _read(s.images, lo, min(lo + step, len(s)), path)
            for k in range(len(block)):
                yield s.sample(lo + k, block[k])


def _dataset_class():
    import torch
    import torch.utils.data

    class ShardDataset(torch.utils.data.Dataset):
        """Samples of one or more shards by index. An item is the dict of
        iter_shard with image as a uint8 tensor 3xHxW (transform, when given,
        receives the numpy HxWx3 image instead and returns what goes there),
        without tokens, objects, provenance and the fields that are None
        (caption and score in image shards), so that the default collate
        batches it. Files open lazily in each worker process."""

        def __init__(self, paths, transform=None):
            self.paths = [paths] if isinstance(paths, str) else list(paths)
            self.transform = transform
            self.index = []
            for k, p in enumerate(self.paths):
                with h5py.File(p, "r") as f:
                    self.index.extend((k, i) for i in range(f["ids"].shape[0]))
            self._open = {}
            self._pid = None

        def __len__(self):
            return len(self.index)

        def _shard(self, k):
            import os
            if self._pid != os.getpid():   # h5py handles do not survive a fork
                self._open, self._pid = {}, os.getpid()
            if k not in self._open:
                self._open[k] = _Shard(open_shard(self.paths[k]), self.paths[k])
            return self._open[k]

        def __getitem__(self, idx):
            k, i = self.index[idx]
            s = self._shard(k)
            image = _read(s.images, i, i + 1, s.path)[0]
            item = s.sample(i, image)
            item["image"] = (self.transform(image) if self.transform
                             else torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
            # What the default collate can batch: no None, no ragged lists.
            return {k: v for k, v in item.items()
                    if v is not None and k not in ("tokens", "objects", "provenance")}

        def provenance(self, k=0):
            """The /provenance of shard k."""
            return self._shard(k).prov

    return ShardDataset


def __getattr__(name):
    """ShardDataset is built on first use, so that importing this module
    needs no torch."""
    if name == "ShardDataset":
        cls = _dataset_class()
        globals()["ShardDataset"] = cls
        return cls
    raise AttributeError(name)

"""A disk cache for the notebooks' expensive results (posteriors, Gibbs runs, Task 2 experiments).

An entry is keyed by everything that determines the result: a name, the sha256 of the weights
files and of the input arrays, the call's parameters, and the sha256 of the package's source (so
that a code change can never serve a stale result). It is stored in ``build/cache/`` as an ``.npz``
of arrays plus a JSON description of the structure -- never pickled. Results may be dataclasses
registered in ``_TYPES``, dicts (any keys), lists, tuples, numpy arrays and JSON scalars.

    post = memo.cached("exact_posterior", lambda: exact_posterior(model, subset),
                       files=[weights_path], arrays=[subset.masked, subset.truth])
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def _types() -> dict:
    from .continuation import Task2Result
    from .gibbs import GibbsResult
    from .inpaint import Posterior

    return {cls.__name__: cls for cls in (Posterior, GibbsResult, Task2Result)}


@lru_cache(maxsize=None)
def source_digest() -> str:
    """sha256 of the package's Python sources (any change invalidates every entry)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _file_digest(path) -> str:
    from .evaluate import file_sha256

    return file_sha256(Path(path))


def _array_digest(array) -> str:
    array = np.ascontiguousarray(np.asarray(array))
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()


def key_of(name: str, files=(), arrays=(), params: dict | None = None) -> str:
    description = {"version": CACHE_VERSION, "name": name, "source": source_digest(),
                   "files": [_file_digest(f) for f in files],
                   "arrays": [_array_digest(a) for a in arrays], "params": params or {}}
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# -- encoding: JSON structure + numbered arrays ----------------------------------------------

def _encode(obj, arrays: list):
    if isinstance(obj, np.ndarray):
        arrays.append(obj)
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if name not in _types():
            raise TypeError(f"memo cannot store a {name}")
        return {"__dataclass__": name,
                "fields": {f.name: _encode(getattr(obj, f.name), arrays)
                           for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"memo cannot store a {type(obj).__name__}")


def _decode(node, arrays):
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        return arrays[f"a{node['__array__']}"]
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    if "__dict__" in node:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["__dict__"]}
    if "__dataclass__" in node:
        cls = _types()[node["__dataclass__"]]
        return cls(**{k: _decode(v, arrays) for k, v in node["fields"].items()})
    raise ValueError("unknown node in a memo file")


def save(path: Path, obj) -> None:
    from .data import atomic_write_bytes

    arrays: list = []
    tree = json.dumps(_encode(obj, arrays))
    buffer = io.BytesIO()
    np.savez(buffer, tree=np.array(tree), **{f"a{i}": a for i, a in enumerate(arrays)})
    atomic_write_bytes(path, lambda handle: handle.write(buffer.getvalue()))


def load(path: Path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "tree"}
        return _decode(json.loads(str(data["tree"])), arrays)


def default_cache_dir() -> Path:
    from .paths import build_dir

    return build_dir() / "cache"


def cached(name: str, compute, files=(), arrays=(), params: dict | None = None,
           cache_dir=None, enabled: bool = True):
    """``compute()``, or its stored result for the same name, files, arrays, params and code.

    A damaged entry is recomputed and replaced. ``enabled=False`` always recomputes (and stores).
    """
    path = Path(cache_dir or default_cache_dir()) / f"{name}-{key_of(name, files, arrays, params)}.npz"
    if enabled and path.exists():
        try:
            return load(path)
        except Exception as error:  # damaged or from an older layout: recompute
            print(f"ignoring unreadable cache entry {path.name} ({error})", file=sys.stderr)
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(path, result)
    return result

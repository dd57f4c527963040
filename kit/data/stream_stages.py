"""The stages of a TabularStream's reading pipeline (kit/data/stream.py): record batches to
DataFrames, a background thread per stage (ahead), the transform's arrays checked, rows
repeated to pad a DDP rank's last batches."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from kit.errors import DataError

Transform = Callable[[pd.DataFrame], "dict[str, np.ndarray]"]


def to_frames(tables: Iterator[pa.Table]) -> Iterator[pd.DataFrame]:
    """Chunks as DataFrames. split_blocks: one numpy array per column (zero-copy where Arrow
    allows) instead of a consolidated 2-D copy; self_destruct frees each column once
    converted. A stage of its own: about as long as the read or the transform."""
    for table in tables:
        yield table.to_pandas(split_blocks=True, self_destruct=True)
        del table


def ahead(chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Produce the next chunk in a background thread while the caller works on this one.

    Arrow decoding and numpy both release the GIL, so chained stages take about the
    slowest stage instead of their sum; at most one chunk waits in each slot.
    """
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: tuple) -> bool:
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def fill() -> None:
        try:
            if all(offer((chunk, None)) for chunk in chunks):
                offer((None, None))
        except BaseException as err:  # noqa: BLE001 - re-raised in the consuming thread
            offer((None, err))
        finally:
            chunks.close()

    reader = threading.Thread(target=fill, name="TabularStream-read", daemon=True)
    reader.start()
    try:
        while True:
            chunk, err = slot.get()
            if err is not None:
                raise err
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()  # the consumer stopped early or failed: let the reader finish
        reader.join()


def repeat_rows(pool: dict[str, torch.Tensor], n: int, size: int
            ) -> Iterator[dict[str, torch.Tensor]]:
    """n full batches cycling through the rows of `pool`."""
    rows = len(next(iter(pool.values())))
    for i in range(n):
        index = torch.arange(i * size, (i + 1) * size) % rows
        yield {k: v[index] for k, v in pool.items()}


def checked_arrays(out: Any, rows: int, transform: Transform) -> dict[str, np.ndarray]:
    """The transform's arrays, checked: one row per input row, numeric, writable."""
    name = getattr(transform, "__qualname__", type(transform).__name__)
    if not isinstance(out, dict) or not out:
        raise DataError(f"transform {name} returned {type(out).__name__}; it must return a "
                        "non-empty dict[str, numpy.ndarray]")
    arrays = {}
    for key, value in out.items():
        a = np.asarray(value)
        if a.ndim == 0 or len(a) != rows:
            raise DataError(f"transform {name} returned {key!r} with shape {a.shape} for a "
                            f"chunk of {rows} rows; return one row per input row (drop rows "
                            "with TabularStream(filter=...), not in the transform)")
        if a.dtype.kind not in "biufc":
            raise DataError(f"transform {name} returned {key!r} as {a.dtype}; tensors need "
                            "numbers: encode strings as integer codes first")
        # read-only arrays (Arrow buffers, pandas copy-on-write) must not back a tensor
        arrays[key] = a if a.flags.writeable else a.copy()
    return arrays

"""Where the chunks run: in this process, on a local dask cluster, or on an existing one.

* ``workers = 0`` and no scheduler: in this process, in order.
* ``workers = N``: a ``distributed.LocalCluster`` of N worker processes, one thread each,
  started without dask's default ``MALLOC_TRIM_THRESHOLD_`` (see :func:`_worker_environ`).
* ``scheduler = ADDRESS``: a ``distributed.Client`` on a running scheduler; its workers
  (on any machine that sees the files) do the work.

At most ``2 × workers`` chunks are in flight at a time, so results (a few MB a chunk) never
pile up in memory, whatever the archive's length. Results come back in completion order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from nowcast.errors import UserError


class Runner:
    """Context manager that maps a function over items (see module doc)."""

    def __init__(self, workers: int = 0, scheduler: str | None = None):
        self.workers = workers
        self.scheduler = scheduler
        self._client = None
        self._cluster = None

    @property
    def distributed(self) -> bool:
        return self._client is not None

    def __enter__(self) -> Runner:
        if self.scheduler is None and self.workers == 0:
            return self
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self._client = Client(self.scheduler, timeout="15s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserError(
                    f"preprocess.scheduler: cannot connect to dask scheduler {self.scheduler!r}: {exc}"
                ) from None
        else:
            import dask

            with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def slots(self) -> int:
        """Chunks kept in flight."""
        if self._client is None:
            return 1
        n = len(self._client.scheduler_info().get("workers", {})) or max(self.workers, 1)
        return 2 * n

    def map_unordered(
        self, fn: Callable[..., Any], items: Iterable[Any], *args: Any
    ) -> Iterator[Any]:
        """``fn(item, *args)`` for every item, yielded as each finishes."""
        if self._client is None:
            for item in items:
                yield fn(item, *args)
            return
        from distributed import as_completed

        client = self._client
        shared = [client.scatter(a, broadcast=True, hash=False) for a in args]
        pending = iter(items)
        futures = as_completed()
        for item in _take(pending, self.slots()):
            futures.add(client.submit(fn, item, *shared, pure=False))
        for fut in futures:
            result = fut.result()
            fut.release()
            nxt = next(pending, None)
            if nxt is not None:
                futures.add(client.submit(fn, nxt, *shared, pure=False))
            yield result


def _worker_environ() -> dict[str, Any]:
    """dask's environment for new worker processes, less ``MALLOC_TRIM_THRESHOLD_``.

    Setting that variable switches off glibc's adaptive mmap threshold, so every array
    above 128 kB (each 350² float32 region, each decoded grid) is mmap'ed and page-faulted
    afresh: reading and transforming a frame took ~35 % longer in a worker than in this
    process. Our tasks hold a few MB at a time, so eager trimming buys nothing. (A value
    set in this process's own environment is still inherited; clusters joined with
    ``--scheduler`` keep their own settings.)
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def _take(it: Iterator[Any], n: int) -> list[Any]:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out

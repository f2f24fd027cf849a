"""torch Datasets over the dataset store: windows of ``n_in`` inputs + ``n_out`` targets per split."""

from nowcast.data.windows import WindowDataset, open_split, worker_context

__all__ = ["WindowDataset", "open_split", "worker_context"]

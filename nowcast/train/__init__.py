"""Training: data loading, losses, the loop with validation and checkpoints, resume, DDP.

from nowcast.train import train
run_dir = train(cfg)              # or train(cfg, resume=True)
"""

from nowcast.train.trainer import TrainingDiverged, preflight, train

__all__ = ["TrainingDiverged", "preflight", "train"]

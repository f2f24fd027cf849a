"""Training: data loading, losses, the loop with validation and checkpoints, resume, DDP.

from nowcast.train import train
result = train(cfg)               # or train(cfg, resume=True); result.run_dir, .best_step, …
"""

from nowcast.train.trainer import TrainingDiverged, TrainResult, preflight, train

__all__ = ["TrainResult", "TrainingDiverged", "preflight", "train"]

"""The root of the typed config tree: one section per stage."""

from __future__ import annotations

from pydantic import Field

from nowcast.config.base import Section
from nowcast.config.data import DataConfig
from nowcast.config.evaluate import EvaluateConfig
from nowcast.config.input import InputConfig
from nowcast.config.model import ModelConfig
from nowcast.config.predict import PredictConfig
from nowcast.config.preprocess import PreprocessConfig
from nowcast.config.synth import SynthConfig
from nowcast.config.train import TrainConfig
from nowcast.config.zr import ZRConfig


class Config(Section):
    """Everything every stage needs; any key left out takes its default."""

    zr: ZRConfig = Field(default_factory=ZRConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)

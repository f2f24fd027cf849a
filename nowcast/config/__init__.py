"""Typed config tree (pydantic), one section per stage, loaded from YAML with ``--set`` overrides.

Each section lives in its own module (``nowcast/config/<section>.py``) so a stage owns its
keys; :mod:`nowcast.config.tree` assembles them, :mod:`nowcast.config.loader` validates.
"""

from nowcast.config.loader import (
    ConfigError,
    config_to_yaml,
    load_config,
    save_config,
    validate_config,
)
from nowcast.config.tree import Config

__all__ = [
    "Config",
    "ConfigError",
    "config_to_yaml",
    "load_config",
    "save_config",
    "validate_config",
]

"""Building blocks of the typed config tree: a strict section base class and constrained types.

Every section rejects unknown keys; constraints are expressed with ``annotated_types`` so
that the loader can say in words what a key expects (``expected a positive number``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Section(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment too.

    Each field's attribute docstring becomes its ``description`` (``use_attribute_docstrings``),
    from which ``scripts/gen_config_docs.py`` writes the key tables of docs/config.md.
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True
    )


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def _off_from_yaml(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``off`` as false: take it as the word ``off``."""
    return "off" if value is False else value


#: mixed precision: ``auto``, ``bf16``, ``fp16`` or ``off`` (see :mod:`nowcast.precision`)
Amp = Annotated[Literal["auto", "bf16", "fp16", "off"], BeforeValidator(_off_from_yaml)]
FrameCount = Annotated[int, Field(ge=1, le=1000)]
"""A number of frames in a window or of leads: bounded, as each is a 2-D field in memory."""
ProcessCount = Annotated[int, Field(ge=0, le=256)]
"""A number of worker processes or threads (0: none, or the library's default)."""
Dpi = Annotated[int, Field(ge=10, le=1000)]
"""Picture resolution [dots per inch]: bounded, as a picture is drawn in memory."""

"""nowcast: precipitation nowcasting from weather-radar archives."""

__version__ = "0.1.0"

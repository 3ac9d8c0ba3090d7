"""Options and the frozen configuration every stage receives.

``settings`` (:class:`FitConfig`, :class:`JobConfig`) and ``errors`` need neither Beam
nor TensorFlow; ``options`` holds the Beam ``PipelineOptions`` subclass and turns it,
once, into a :class:`JobConfig`.
"""

from pipeline.config.errors import ConfigError, one_line
from pipeline.config.settings import FitConfig, GroupBy, JobConfig

__all__ = ["ConfigError", "FitConfig", "GroupBy", "JobConfig", "one_line"]

"""Stage 4, the fit: the compiled ``tf.GradientTape`` loop over many datasets at once. No Beam.

It runs anywhere, e.g. in a notebook::

    from pipeline.fit import FitConfig, LineFitter
    result = LineFitter(FitConfig()).fit(x, y)   # numpy arrays in, FitResult out

TensorFlow is imported when a :class:`LineFitter` is built, not when this package is.
"""

from pipeline.config.settings import FitConfig
from pipeline.fit.fitter import LineFitter
from pipeline.fit.result import FitResult, Status, failed

__all__ = ["FitConfig", "FitResult", "LineFitter", "Status", "failed"]

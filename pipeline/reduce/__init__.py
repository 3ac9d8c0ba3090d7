"""Stage 3, reduce them: each dataset to the moments of its fit, streamed and merged exactly.

The face exports the math only (``moments``: numpy, no Beam), so the fit can use it
anywhere. The Beam side lives in ``batches`` (what travels between stages, the
``MergePartialsFn`` combine) and ``readers`` (the DoFns that read and reduce).
"""

from pipeline.reduce.moments import Moments, MomentsBuilder, merge, segment_moments

__all__ = ["Moments", "MomentsBuilder", "merge", "segment_moments"]

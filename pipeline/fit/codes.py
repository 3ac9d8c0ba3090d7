"""How the compiled loop ended for a dataset (no TensorFlow: the fitter reads these too)."""

__all__ = ["CONVERGED", "DIVERGED", "MAX_STEPS", "RUNNING", "STALLED"]

RUNNING, CONVERGED, MAX_STEPS, DIVERGED, STALLED = 0, 1, 2, 3, 4

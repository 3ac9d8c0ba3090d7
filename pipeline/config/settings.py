"""The frozen configuration every stage receives: the fit's hyper-parameters and the job's settings.

No Beam and no TensorFlow here: the fit (:mod:`pipeline.fit`) takes a :class:`FitConfig`
and runs anywhere. :mod:`pipeline.config.options` builds a :class:`JobConfig` from the
command line, once, at the edge.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import asdict, dataclass

from pipeline.config.errors import ConfigError

__all__ = [
    "DTYPES",
    "LOSSES",
    "LOSS_FORMS",
    "HUBER_STEP",
    "LEARNING_RATES",
    "MAX_STEPS",
    "FitConfig",
    "GroupBy",
    "JobConfig",
    "new_run_id",
]

DTYPES = ("float64", "float32")
LOSSES = ("squared", "huber")
MAX_STEPS = 2**63 - 1  # the step counter is a 64-bit integer
# The default learning rate per loss. Huber's step is preconditioned by its inverse
# curvature (pipeline.fit.losses), so its scaled Hessian is 2·I and η = 1/2 is a Newton step.
LEARNING_RATES = {"squared": 0.1, "huber": 0.5}
# Huber's preconditioned step reaches no closer to a quadratic's minimum for η ≥ 1 (|1 − 2η| ≥ 1).
HUBER_STEP = 1.0
LOSS_FORMS = ("gram", "rows")


class GroupBy:
    """Names of the three ways files become datasets."""

    FILE = "file"
    DIRECTORY = "directory"
    COLUMN = "column"


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of one line fit.

    Attributes:
        learning_rate: Step size η of the update θ ← θ − η·∇L (for Huber θ ← θ − η·σ·M⁻¹·∇L,
            damped where a step would raise the loss); ``None`` (the default): 0.1 for the
            squared loss, 0.5 (a Newton step) for Huber.
        max_steps: Most parameter updates before giving up (status ``not_converged``).
        tolerance: Converged once the gradient's 2-norm, in standardized coordinates, is
            at most this; 0 (the default) runs to the rounding floor of ``dtype`` (see
            docs/fit.md, "When the loop stops").
        standardize: Descend on standardized data (always converges for η < 1).
        dtype: ``"float64"`` or ``"float32"``: precision of the descent loop.
        loss: ``"squared"`` (least squares) or ``"huber"`` (Huber's loss with a jointly
            estimated scale σ).
        huber_epsilon: Huber's ε (> 1): residuals beyond ε·σ count linearly.
        intercept: Fit y = w·x + b (default), or y = w·x with b exactly 0.
        weights: The row-weight column (``--weight_column``), or ``None``: every weight 1.
        loss_form: ``"gram"`` (the loss from the dataset's moments) or ``"rows"``; by
            default ``gram`` for the squared loss and ``rows`` for Huber (which has no
            Gram form).
    """

    learning_rate: float | None = None
    max_steps: int = 1000
    tolerance: float = 0.0
    standardize: bool = True
    dtype: str = "float64"
    loss: str = "squared"
    huber_epsilon: float = 1.35
    intercept: bool = True
    weights: str | None = None
    loss_form: str | None = None

    def __post_init__(self) -> None:
        """Reject values no fit could use; choose the loss form the loss needs.

        Raises:
            ConfigError: if a value is out of range or the options contradict each other.
        """
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", LEARNING_RATES[self.loss])
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"--learning_rate must be a positive number, got {self.learning_rate!r}")
        if not 1 <= self.max_steps <= MAX_STEPS:
            raise ConfigError(f"--max_steps must be between 1 and {MAX_STEPS} (2**63 - 1), got {self.max_steps!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ConfigError(f"--tolerance must be a finite number >= 0, got {self.tolerance!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not (math.isfinite(self.huber_epsilon) and self.huber_epsilon > 1):
            raise ConfigError(f"--huber_epsilon must be a number > 1, got {self.huber_epsilon!r}")
        form = self.loss_form or ("rows" if self.loss == "huber" else "gram")
        if form not in LOSS_FORMS:
            raise ConfigError(f"--loss_form must be one of {', '.join(LOSS_FORMS)}, got {self.loss_form!r}")
        if self.loss == "huber" and form == "gram":
            raise ConfigError("--loss huber has no Gram form: leave --loss_form out (huber runs the row form)")
        if self.loss == "huber" and not self.standardize:
            raise ConfigError("--loss huber descends on standardized data; --no_standardize is for --loss squared")
        if self.loss == "huber" and self.learning_rate >= HUBER_STEP:
            raise ConfigError(
                f"--loss huber needs --learning_rate below 1 (default 0.5, a Newton step), got {self.learning_rate!r}"
            )
        object.__setattr__(self, "loss_form", form)


@dataclass(frozen=True)
class JobConfig:
    """Everything one run needs, validated; built once by :func:`config_from_options`.

    Attributes:
        input: The input pattern as given (directory, glob or file).
        output: The output table directory.
        run_date: The output partition's date, ``YYYY-MM-DD``.
        group_by: One of :class:`GroupBy`'s names.
        key_column: The grouping column for ``group_by == "column"``, else ``None``.
        x_column: Name of the x column.
        y_column: Name of the y column.
        fit: The fit's hyper-parameters.
        run_id: Unique id of this run, stored in every output row.
        started_at: When the run was launched (UTC).
        batch_size: Most datasets fitted in one compiled call.
        incremental: Reuse the previous rows of unchanged datasets.
        warm_start: Start the descent from the previous partition's (w, b).
        input_template: ``--input`` as given when it held ``{run_date}`` placeholders, else ``None``.
        max_failed_fraction: Exit 3 when more than this fraction of datasets fails or diverges.
        progress_interval: Seconds between progress lines on local runs; 0 for none.
        max_rows_in_memory: Row form: most rows a dataset may have (0: sized for the worker).
        lock_timeout: Seconds to wait for another run's commit of the same partition.
        read_threads: Threads a worker reads on: a long table's chunks are split and reduced, small
            files read ahead (0: one per core of the worker).
    """

    input: str
    output: str
    run_date: str
    group_by: str
    key_column: str | None
    x_column: str
    y_column: str
    fit: FitConfig
    run_id: str
    started_at: dt.datetime
    batch_size: int = 2000
    incremental: bool = False
    warm_start: bool = False
    input_template: str | None = None
    max_failed_fraction: float = 1.0
    progress_interval: float = 10.0
    max_rows_in_memory: int = 0
    lock_timeout: float = 300.0
    read_threads: int = 0

    @property
    def weight_column(self) -> str | None:
        """The row-weight column, or ``None``."""
        return self.fit.weights

    @property
    def columns(self) -> tuple[str, ...]:
        """The numeric columns read from every file: x, y and, when weighted, the weights."""
        return (self.x_column, self.y_column) + ((self.fit.weights,) if self.fit.weights else ())

    def describe(self) -> dict:
        """Return the options as plain JSON-friendly values, for the manifest."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["group_by"] = f"column:{self.key_column}" if self.key_column else self.group_by
        del data["key_column"]
        return data


def new_run_id(now: dt.datetime) -> str:
    """Return a sortable, unique run id such as ``20261125T173000Z-1a2b3c4d``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"

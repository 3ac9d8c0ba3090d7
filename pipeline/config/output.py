"""What ``--output`` names: a table directory, or a BigQuery table ``bigquery:PROJECT:DATASET.TABLE``.

Parsing only (no Beam, no Google client): options are validated before anything is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PREFIX", "BigQueryTable", "is_bigquery", "parse_bigquery_output"]

PREFIX = "bigquery:"
_TABLE = re.compile(r"^(?P<project>[a-z][a-z0-9.:-]{4,61}[a-z0-9]):(?P<dataset>\w{1,1024})\.(?P<table>[\w-]{1,1024})$")


@dataclass(frozen=True)
class BigQueryTable:
    """A BigQuery table named by ``--output bigquery:PROJECT:DATASET.TABLE``.

    Attributes:
        project: The Google Cloud project id.
        dataset: The BigQuery dataset.
        table: The table name (no partition decorator).
    """

    project: str
    dataset: str
    table: str

    @property
    def spec(self) -> str:
        """``PROJECT:DATASET.TABLE``."""
        return f"{self.project}:{self.dataset}.{self.table}"

    def partition(self, run_date: str) -> str:
        """``PROJECT:DATASET.TABLE$YYYYMMDD``: the decorator of one ``run_date`` partition."""
        return f"{self.spec}${run_date.replace('-', '')}"


def is_bigquery(output: str) -> bool:
    """Whether ``--output`` names a BigQuery table rather than a table directory."""
    return output.startswith(PREFIX)


def parse_bigquery_output(output: str) -> BigQueryTable:
    """Parse ``bigquery:PROJECT:DATASET.TABLE``.

    Raises:
        ValueError: with a one-line message when it is not of that form.
    """
    match = _TABLE.match(output[len(PREFIX) :])
    if not match:
        raise ValueError(f"--output must be bigquery:PROJECT:DATASET.TABLE (no $ decorator), got {output!r}")
    return BigQueryTable(match["project"], match["dataset"], match["table"])

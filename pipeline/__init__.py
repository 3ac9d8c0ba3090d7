"""tapefit: fit one straight line per Parquet dataset by gradient descent, at scale.

The subpackages follow the data, in the order it travels:

* ``discover`` - find the input's Parquet files and group them into datasets;
* ``read``     - read x and y (and a key) from Parquet with pyarrow;
* ``reduce``   - reduce each dataset to its moments while reading (or keep its rows),
  and merge the moments of datasets spread over many files;
* ``fit``      - the fit itself: the compiled TensorFlow loop, numpy in, results out (no Beam);
* ``table``    - the output table: schema, staged write and commit, BigQuery, history;
* ``report``   - the HTML report of a partition.

Apart from the flow: ``config`` (options and the frozen configuration), ``observe``
(metrics and progress) and ``graph`` (``build(p, config)``, which wires the stages into
one Beam pipeline). The launchers live in the top-level ``jobs`` package.
"""

__version__ = "0.2.0"

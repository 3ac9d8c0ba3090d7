"""tapefit: fit one straight line per Parquet dataset by gradient descent, at scale.

The package is layered so a newcomer finds each part by its file name:

* ``options``   - command-line options and the frozen configuration built from them;
* ``datasets``  - discovering input files and grouping them into datasets;
* ``reading``   - reading x, y (and key) columns from Parquet with pyarrow;
* ``fit``       - the line fit itself (numpy in, plain result out; no Beam);
* ``descent``   - the compiled TensorFlow gradient-descent loop used by ``fit``;
* ``table``     - the output table: schema, rows, partition commit and manifest;
* ``transforms``- the Beam transforms that wire these together;
* ``build``     - ``build(p, config)``, the whole pipeline graph.
* ``partitions``- reading committed partitions back (no Beam);
* ``report``    - the HTML report of a partition (``tapefit report``; matplotlib).
"""

__version__ = "0.1.0"

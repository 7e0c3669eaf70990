"""batchpred: scheduled batch prediction (see the README and docs/).

`__version__` is the one place the version is written: the wheel's metadata
(hatch reads it, see pyproject.toml) and `batchpred --version` come from here.
"""

__version__ = "0.2.0"

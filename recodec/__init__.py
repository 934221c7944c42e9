"""recodec: recompress large image archives and prove nothing was lost."""

__version__ = "0.1.0"

from recodec import quiet as _quiet

_quiet.install()

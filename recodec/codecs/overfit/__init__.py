"""The overfitted neural codec ``overfit`` (Cool-chic / C3 family) with bit-exact integer decoding.

Importing this package imports neither torch nor constriction; they load in ``Codec.load``.
"""

from recodec.codecs.overfit.codec import OverfitCodec

__all__ = ["OverfitCodec"]

"""Learned image codecs (factorized prior and scale hyperprior) with bit-exact integer decoding.

Importing this package imports neither torch nor constriction; they load in ``Codec.load``.
"""

from recodec.codecs.learned.codec import FactorizedCodec, HyperpriorCodec

__all__ = ["FactorizedCodec", "HyperpriorCodec"]

"""Recurrent progressive codec (Toderici et al. 2016/2017) with an exact integer decoder.

Modules: :mod:`.models` (float networks), :mod:`.training` (truncated BPTT), :mod:`.integer`
(exact decoder), :mod:`.export` (weights file), :mod:`.bitstream` and :mod:`.codec`.
"""

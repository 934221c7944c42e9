"""The rate-distortion trade-offs of the shipped quality ladder (one definition for training and coding)."""

from __future__ import annotations

#: The shipped ladder (loss = lambda * 255^2 * MSE + bpp), low to high quality: CompressAI's MSE
#: ladder (0.0018 .. 0.0483) and three points below it added by :mod:`recodec.tasks.ladder`.
DEFAULT_LAMBDAS: tuple[float, ...] = (0.00025, 0.0005, 0.00093, 0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)

"""Rebuilding a float model from shipped weights: it decodes like the integer decoder does."""

from __future__ import annotations

import numpy as np
import torch

from recodec.codecs.learned.integer import MEAN_FRAC
from recodec.codecs.learned.recover import model_from_shipped


def test_recovered_float_model_matches_the_integer_decoder(hyperprior, photo: np.ndarray) -> None:
    rt = hyperprior.runtime
    state = torch.load(hyperprior.weights, map_location="cpu", weights_only=True)
    model, report = model_from_shipped(state, fit_steps=20)  # a short fit: the decoder is what is checked
    assert np.isfinite(report["density_z_excess_bits"])
    img = photo[:64, :128]
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    q = 3
    with torch.no_grad():
        y = model.analysis(x, q)
        z_hat = torch.round(model.h_a(y))
        _, mean = rt.hs(z_hat.to(torch.int64))
        mu = mean.double() / 2**MEAN_FRAC
        r = torch.round(y.double() - mu)
        integer = rt.gs(r * 2**MEAN_FRAC + mean, MEAN_FRAC, q).permute(1, 2, 0).numpy().astype(np.float64)
        _, mu_float = model.hyper_params(z_hat)
        floating = model.g_s((r + mu).float() * model.inv_gain(q))[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255
        assert float(torch.max(torch.abs(mu_float.double() - mu))) < 0.05  # float h_s ~ integer h_s
    assert np.sqrt(np.mean((integer - floating) ** 2)) < 0.5  # well under one grey level

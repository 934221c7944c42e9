"""Generative decoders: JPEG restoration, a diffusion and a GAN decoder for the hyperprior's stream."""

"""Tests of the learned codecs."""

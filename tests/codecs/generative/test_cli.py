"""``recodec decode --enhance`` / ``--decoder gan|diffusion``: generated views, marked as such."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from recodec.cli import cli  # noqa: E402
from recodec.codecs import get_codec  # noqa: E402
from recodec.codecs.generative.view import PNG_KEY  # noqa: E402


def _image() -> np.ndarray:
    y, x = np.mgrid[0:56, 0:72]
    return np.stack([x * 3, y * 4, (x + y) * 2], axis=2).astype(np.uint8)


def _png_text(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as im:
        return dict(im.text)


def test_enhance_any_jpeg(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "foreign.jpg"  # written by Pillow, not by recodec
    buf = io.BytesIO()
    Image.fromarray(_image()).save(buf, "JPEG", quality=15)
    src.write_bytes(buf.getvalue())
    result = CliRunner().invoke(cli, ["decode", "--enhance", "--steps", "2", "--seed", "7", str(src),
                                      str(tmp_path / "view.png")])
    assert result.exit_code == 0, result.output
    assert "GENERATED VIEW" in result.output and "steps=2 seed=7" in result.output
    assert _png_text(tmp_path / "view.png")[PNG_KEY.decode()].startswith("restore-jpeg steps=2 seed=7")
    plain = CliRunner().invoke(cli, ["decode", str(src), str(tmp_path / "plain.png")])
    assert plain.exit_code == 0 and "GENERATED" not in plain.output
    assert PNG_KEY.decode() not in _png_text(tmp_path / "plain.png")


def test_decoder_gan_and_diffusion_on_a_hyperprior_stream(tmp_path: Path) -> None:
    src = tmp_path / "a.rclc"
    src.write_bytes(get_codec("hyperprior").encode(_image(), quality=1))
    runner = CliRunner()
    gan = runner.invoke(cli, ["decode", "--decoder", "gan", "--realism", "0.8", str(src), str(tmp_path / "g.png")])
    assert gan.exit_code == 0, gan.output
    assert "realism=0.8" in _png_text(tmp_path / "g.png")[PNG_KEY.decode()]
    assert "texture=guessed" in gan.output  # a plain hyperprior stream carries no texture record
    recorded = tmp_path / "b.rclc"
    recorded.write_bytes(get_codec("hyperprior-gan").encode(_image(), quality=1))
    gan2 = runner.invoke(cli, ["decode", "--decoder", "gan", str(recorded), str(tmp_path / "g2.png")])
    assert gan2.exit_code == 0, gan2.output
    assert "texture=recorded" in _png_text(tmp_path / "g2.png")[PNG_KEY.decode()]
    diff = runner.invoke(cli, ["decode", "--decoder", "diffusion", "--steps", "3", str(src), str(tmp_path / "d")])
    assert diff.exit_code == 0, diff.output
    assert "steps=3" in _png_text(tmp_path / "d.png")[PNG_KEY.decode()]
    # Settings a decoder does not take, and decoders for the wrong stream, are one-line errors.
    bad = runner.invoke(cli, ["decode", "--decoder", "gan", "--steps", "3", str(src), str(tmp_path / "x.png")])
    assert bad.exit_code != 0 and "realism, seed" in bad.output
    wrong = runner.invoke(cli, ["decode", "--enhance", str(src), str(tmp_path / "y.png")])
    assert wrong.exit_code != 0 and "no enhance decoder for hyperprior" in wrong.output
    out_of_range = runner.invoke(cli, ["decode", "--decoder", "gan", "--realism", "2", str(src),
                                       str(tmp_path / "z.png")])
    assert out_of_range.exit_code != 0 and "realism" in out_of_range.output

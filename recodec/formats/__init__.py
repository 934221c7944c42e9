"""Image and stream formats, below the codecs: no codec, Prefect, Ray or storage here.

- :mod:`~recodec.formats.magic`     one table of magic signatures (source sniffing, every codec's ``sniff``)
- :mod:`~recodec.formats.image`     the decoded :class:`Image`, ``as_hwc`` and the pixel-limit check
- :mod:`~recodec.formats.bandpack`  band packs: self-describing groups of native streams
- :mod:`~recodec.formats.tiff`      TIFF/GeoTIFF writing and reading, GeoTIFF tags
- :mod:`~recodec.formats.jpeg`      JPEG marker walking and the libjpeg-turbo decoder
- :mod:`~recodec.formats.headers`   PNG, WebP and JPEG 2000 headers (sizes before decoding)
- :mod:`~recodec.formats.source`    safe reading of source images (:func:`read_image`)
"""

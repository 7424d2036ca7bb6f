#!/usr/bin/python3
"""Record reference values for patch.ColourTextureStats (stats.go) with
scikit-image 0.19.3 (rgb2hed, graycomatrix, graycoprops) and numpy
(gradient, moments).

    /usr/bin/python3 patch/testdata/gen_stats_golden.py > patch/testdata/stats_golden.json
"""
import json

import numpy as np
import skimage
from skimage.color import rgb2hed
from skimage.feature import graycomatrix, graycoprops

rng = np.random.default_rng(11)


def stats(pix):
    rgb = pix.astype(np.float64) / 255
    feats = list(rgb.reshape(-1, 3).mean(0)) + list(rgb.reshape(-1, 3).std(0))
    hed = rgb2hed(pix).reshape(-1, 3)
    feats += list(hed.mean(0)) + list(hed.std(0))
    # Same expression and summation order as the Go code (rgb2gray's
    # coefficients), so bin edges agree bit for bit.
    grey = 0.2125 * rgb[..., 0] + 0.7154 * rgb[..., 1] + 0.0721 * rgb[..., 2]
    hist = np.bincount(np.minimum((grey * 8).astype(int), 7).ravel(), minlength=8) / grey.size
    feats += list(hist)
    gy, gx = np.gradient(grey)
    mag = np.hypot(gx, gy)
    feats += [mag.mean(), mag.std()]
    q = np.minimum((grey * 16).astype(int), 15).astype(np.uint8)
    P = graycomatrix(q, distances=[1], angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                     levels=16, symmetric=True, normed=True)
    for prop in ("contrast", "homogeneity", "energy", "correlation"):
        feats.append(graycoprops(P, prop).mean())
    return [float(v) for v in feats]


cases = []
size = 16
# Random noise, a smooth H&E-like gradient and a 2-pixel-block pattern.
cases.append(("noise", rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)))
yy, xx = np.mgrid[0:size, 0:size]
he = np.stack([200 - 6 * yy + 3 * xx, 120 + 4 * xx, 190 - 2 * yy], -1)
he = np.clip(he + rng.normal(scale=8, size=he.shape), 0, 255).astype(np.uint8)
cases.append(("he_like", he))
blocks = (((yy // 2) + (xx // 2)) % 2).astype(np.uint8)
cases.append(("blocks", np.stack([blocks * 230 + 10, blocks * 100 + 60, blocks * 180 + 40], -1).astype(np.uint8)))
out = {"skimage": skimage.__version__, "cases": [
    {"name": name, "size": size, "pix": p.ravel().tolist(), "stats": stats(p)} for name, p in cases]}
print(json.dumps(out))

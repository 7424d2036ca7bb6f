#!/usr/bin/python3
"""Reference values for patch/augment.go, written to golden.json.

Run: /usr/bin/python3 gen_golden.py   (numpy, scipy, torch, torchvision from Debian)

The input is a 3x8x8 float32 CHW patch p[c,y,x] = 0.1 + 0.8*((7c+3y+5x) % 11)/10,
rebuilt identically by the Go test.
HED: scikit-image's rgb2hed/hed2rgb formulas (separate_stains/combine_stains) in numpy, minus rgb2hed's clip of negative stains.
Brightness/contrast: torchvision.transforms.functional adjust_brightness then adjust_contrast.
Blur: scipy.ndimage.gaussian_filter(mode="reflect", truncate=3).
Resized crop: torch.nn.functional.interpolate(bilinear, align_corners=False).
"""
import json, os
import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

S = 8
c, y, x = np.meshgrid(np.arange(3), np.arange(S), np.arange(S), indexing="ij")
p = (0.1 + 0.8 * ((7 * c + 3 * y + 5 * x) % 11) / 10).astype(np.float32)

rgb_from_hed = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
hed_from_rgb = np.linalg.inv(rgb_from_hed)
alpha = np.array([1.1, 0.9, 1.0]); beta = np.array([0.01, -0.02, 0.0])
rgb = np.maximum(p.reshape(3, -1).T.astype(np.float64), 1e-6)
stains = (np.log(rgb) / np.log(1e-6)) @ hed_from_rgb  # rgb2hed without its clip at 0 (kept so neutral = identity)
stains = stains * alpha + beta
hed = np.clip(np.exp(-(stains * -np.log(1e-6)) @ rgb_from_hed), 0, 1).T.reshape(3, S, S)

t = torch.from_numpy(p.copy())
bc = TF.adjust_contrast(TF.adjust_brightness(t, 1.2), 0.8).numpy()

blur = np.stack([ndi.gaussian_filter(p[i].astype(np.float64), sigma=1.3, mode="reflect", truncate=3.0) for i in range(3)])

top, left, h, w = 1, 2, 5, 6
crop = F.interpolate(t[None, :, top:top + h, left:left + w], size=(S, S), mode="bilinear", align_corners=False)[0].numpy()

rot = {k: np.ascontiguousarray(np.rot90(p, k, axes=(1, 2))).ravel().tolist() for k in range(4)}

out = {
    "size": S, "alpha": alpha.tolist(), "beta": beta.tolist(),
    "hed": hed.ravel().tolist(),
    "brightness": 1.2, "contrast": 0.8, "bc": bc.ravel().tolist(),
    "sigma": 1.3, "blur": blur.ravel().tolist(),
    "crop": [top, left, h, w], "resized_crop": crop.ravel().tolist(),
    "rot90": {str(k): v for k, v in rot.items()},
}
json.dump(out, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json"), "w"))

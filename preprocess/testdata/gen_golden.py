#!/usr/bin/python3
"""Record reference values for package preprocess.

HVG: a numpy/pandas re-implementation of scanpy 1.9's
`highly_variable_genes` (flavor="seurat", with and without batch_key, and
flavor="seurat_v3") on the first 100 spots of HER2ST section A1 (scanpy
itself is not installable here). Statistics are computed in float64
(scanpy squares float32 values; that rounding is not reproduced).
seurat_v3 uses scikit-misc's loess (Debian python3-skmisc 0.1.4) twice:
surface="direct", which the Go code implements and must match, and
scanpy's default surface="interpolate" (k-d tree + vertex interpolation),
which the Go code approximates; the test reports the overlap.

PCA: scikit-learn 1.2.1 PCA(svd_solver="full") on deterministic synthetic
matrices defined by formula (so Go regenerates them without storing them).

Run from the repository root with shared/ beside it:
    /usr/bin/python3 preprocess/testdata/gen_golden.py > preprocess/testdata/golden.json
"""
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from skmisc.loess import loess
from sklearn.decomposition import PCA

NSPOTS = 100
NTOP = 200
A1 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "her2st" / "counts" / "A1.tsv.gz"


def read_counts(path, nrows):
    """Tiny gzip TSV reader: header of gene names, then spot id + counts."""
    with gzip.open(path, "rt") as f:
        genes = f.readline().rstrip("\n").split("\t")[1:]
        rows = []
        for _ in range(nrows):
            rows.append([float(v) for v in f.readline().rstrip("\n").split("\t")[1:]])
    return genes, np.array(rows)


def normalize_log1p(counts):
    """NormalizeTotal(1e4) then Log1p, stored as float32 like the Go code."""
    s = counts.sum(1, keepdims=True)
    s[s == 0] = 1
    x = (counts * (1e4 / s)).astype(np.float32)
    return np.log1p(x.astype(np.float64)).astype(np.float32)


def seurat_single(X, n_top):
    """scanpy _highly_variable_genes_single_batch, flavor='seurat'."""
    X = np.expm1(X.astype(np.float64))
    n = X.shape[0]
    mean = X.sum(0) / n
    var = ((X * X).sum(0) / n - mean**2) * n / (n - 1)
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    with np.errstate(invalid="ignore"):
        dispersion = np.log(dispersion)
    mean = np.log1p(mean)
    df = pd.DataFrame({"means": mean, "dispersions": dispersion})
    df["mean_bin"] = pd.cut(df["means"], bins=20)
    grouped = df.groupby("mean_bin")["dispersions"]
    disp_mean_bin = grouped.mean()
    disp_std_bin = grouped.std(ddof=1)
    one = disp_std_bin.isnull()
    disp_std_bin[one.values] = disp_mean_bin[one.values].values
    disp_mean_bin[one.values] = 0
    df["dispersions_norm"] = (df["dispersions"].values - disp_mean_bin[df["mean_bin"].values].values) / disp_std_bin[df["mean_bin"].values].values
    dn = df["dispersions_norm"].values
    finite = dn[~np.isnan(dn)]
    finite[::-1].sort()
    cut = finite[n_top - 1]
    df["highly_variable"] = np.nan_to_num(dn) >= cut
    return df


def seurat_batches(X, batch, n_top):
    """scanpy highly_variable_genes(flavor='seurat', batch_key=...)."""
    parts = []
    for b in np.unique(batch):
        sub = X[batch == b]
        filt = (sub != 0).sum(0) >= 1
        df = seurat_single(sub[:, filt], n_top)
        full = pd.DataFrame({
            "means": np.nan, "dispersions": np.nan, "dispersions_norm": np.nan,
            "highly_variable": False}, index=np.arange(X.shape[1]))
        full.loc[filt, ["means", "dispersions", "dispersions_norm"]] = df[["means", "dispersions", "dispersions_norm"]].values
        full.loc[filt, "highly_variable"] = df["highly_variable"].values
        full["gene"] = np.arange(X.shape[1])
        parts.append(full)
    df = pd.concat(parts, axis=0)
    df["highly_variable"] = df["highly_variable"].astype(int)
    df = df.groupby("gene").agg(dict(means=np.nanmean, dispersions=np.nanmean,
                                     dispersions_norm=np.nanmean, highly_variable=np.nansum))
    df = df.rename(columns=dict(highly_variable="highly_variable_nbatches"))
    df = df.sort_values(["highly_variable_nbatches", "dispersions_norm"], ascending=False,
                        na_position="last", kind="stable")
    return df.index[:n_top].tolist(), df.sort_index()


def seurat_v3(counts, n_top, surface, span=0.3):
    """scanpy _highly_variable_genes_seurat_v3, single batch; scanpy calls
    skmisc loess with the default surface="interpolate"."""
    n = counts.shape[0]
    mean = counts.sum(0) / n
    var = ((counts * counts).sum(0) / n - mean**2) * n / (n - 1)
    not_const = var > 0
    est = np.zeros(counts.shape[1])
    model = loess(np.log10(mean[not_const]), np.log10(var[not_const]), span=span, degree=2, surface=surface)
    model.fit()
    est[not_const] = model.outputs.fitted_values
    reg_std = np.sqrt(10**est)
    clip_val = reg_std * np.sqrt(n) + mean
    clipped = np.minimum(counts, clip_val[None, :])
    norm = (n * mean**2 + (clipped**2).sum(0) - 2 * clipped.sum(0) * mean) / ((n - 1) * reg_std**2)
    order = np.argsort(-norm, kind="stable")
    return order[:n_top].tolist(), norm, est


def pca_matrix(n, d):
    """Deterministic structured matrix: decaying low-rank signal + hash noise."""
    i = np.arange(n, dtype=np.float64)[:, None]
    j = np.arange(d, dtype=np.float64)[None, :]
    x = np.zeros((n, d))
    for r in range(1, 11):
        x += (3.0 / r) * np.sin(r * (i + 1) * 0.37 + j * 0.11 * r)
    noise = np.sin(i * 12.9898 + j * 78.233) * 43758.5453
    x += 0.1 * (noise - np.floor(noise))
    return x.astype(np.float32)


out = {"sklearn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__}

if A1.exists():
    genes, counts = read_counts(A1, NSPOTS)
    keep = np.flatnonzero((counts != 0).sum(0) >= 1)
    counts = counts[:, keep]
    X = normalize_log1p(counts)
    df = seurat_single(X, NTOP)
    batch = (np.arange(NSPOTS) >= NSPOTS // 2).astype(int)
    sel_b, dfb = seurat_batches(X, batch, NTOP)
    sel_v3, norm_v3, est_v3 = seurat_v3(counts, NTOP, "direct")
    sel_v3i, norm_v3i, est_v3i = seurat_v3(counts, NTOP, "interpolate")
    nan = lambda a: [None if np.isnan(v) else float(v) for v in a]
    out["hvg"] = {
        "nspots": NSPOTS, "ntop": NTOP, "kept_genes": keep.tolist(),
        "seurat_means": nan(df["means"].values),
        "seurat_dispersions_norm": nan(df["dispersions_norm"].values),
        "seurat_selected": np.flatnonzero(df["highly_variable"].values).tolist(),
        "batch_selected": sel_b,
        "batch_dispersions_norm": nan(dfb["dispersions_norm"].values),
        "batch_nbatches": dfb["highly_variable_nbatches"].astype(int).tolist(),
        "v3_selected": sel_v3,
        "v3_variances_norm": nan(norm_v3),
        "v3_interpolate_selected": sel_v3i,
        "v3_interpolate_variances_norm": nan(norm_v3i),
    }
else:
    print(f"warning: {A1} missing; HVG references not written", file=sys.stderr)

pcas = []
for n, d, k in [(60, 20, 5), (300, 120, 8)]:
    x = pca_matrix(n, d)
    p = PCA(n_components=k, svd_solver="full").fit(x.astype(np.float64))
    pcas.append({
        "n": n, "d": d, "k": k,
        "explained_variance": p.explained_variance_.tolist(),
        "scores": p.transform(x.astype(np.float64)).ravel().tolist(),
        "components": p.components_.ravel().tolist(),
    })
out["pca"] = pcas
print(json.dumps(out))

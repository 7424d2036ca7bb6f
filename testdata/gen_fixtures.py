#!/usr/bin/python3
"""Generate the small genuine Space Ranger and AnnData fixtures of spotfuse.

Source: the real HER2ST section A1 (see ../shared/data/her2st/README.md),
read from HER2ST (default ../../shared/data/her2st relative to this file,
or $HER2ST). Run with Debian's python3 (python3-anndata 0.8.0,
python3-h5py 3.7.0, python3-numpy 1.24, python3-pil 9.4):

    /usr/bin/python3 testdata/gen_fixtures.py

What is genuine and what is synthesised
---------------------------------------
* Spots: the 40 labelled A1 spots (with a counts row) closest to the image
  origin (smallest pixel_x + pixel_y, ties by spot id), so that one small
  crop anchored at (0, 0) covers them all. Spot order: by spot id
  ("{x}x{y}") as in the counts file order.
* Genes: the 60 genes with the largest total count over those 40 spots (ties
  by name), kept in the counts-file column order. Counts are the real UMI
  counts, unchanged.
* Positions: the real spot-file pixel_x, pixel_y (full-resolution pixels)
  and array x, y. In Space Ranger terms array_row = y, array_col = x,
  pxl_row_in_fullres = pixel_y, pxl_col_in_fullres = pixel_x (written with
  the spot file's 2 decimals; Space Ranger >= 2 writes integers, readers
  must accept both).
* Labels: the real pathologist labels (joined as the HER2ST README says).
* Image: the real A1 image (A1_HE_image_dark.png, 0.287604 x full-res),
  cropped to [0, crop) x [0, crop) and downscaled, so the fixture images are
  still pure scalings of the full-resolution frame:
  hires scale = HIRES_SCALEF, lowres scale = LOWRES_SCALEF.
* Barcodes (synthesised, deterministic): 16 nt + "-1"; the first 8 nt are
  the array x in base 4 and the last 8 nt the array y in base 4, most
  significant digit first, digits A=0 C=1 G=2 T=3. Example: 10x13 ->
  AAAAAAGG AAAAAATC -> "AAAAAAGGAAAAAATC-1". See barcode() below; the Go
  tests use the same mapping.
* Gene ids: HER2ST has gene symbols only, so the feature id equals the
  symbol (no invented Ensembl ids).
* Off-tissue rows: Space Ranger lists every array position in the tissue
  positions file. We add the OFF_TISSUE array positions that are not in
  A1's spot file, with in_tissue = 0 and pixel positions from the HER2ST
  frame formula pixel_x = (x-1)*W/32, pixel_y = (y-1)*H/34 (W, H = A1
  full-res size 6954 x 7435). They have no matrix column (as in a filtered
  matrix).
* The 10x .h5 additionally holds two "Antibody Capture" features
  (ADT_CD3, ADT_CD19) with synthesised counts (spot index % 3 + 1 and
  spot index % 5 + 1); readers must drop them (Gene Expression only).

Output (committed, < 1 MB in total):
  visium/A1_sub/outs/         filtered_feature_bc_matrix.h5,
                              spatial/tissue_positions.csv (header),
                              spatial/scalefactors_json.json,
                              spatial/tissue_hires_image.png,
                              spatial/tissue_lowres_image.png
  visium/A1_sub_v1/outs/      filtered_feature_bc_matrix/{matrix.mtx.gz,
                              barcodes.tsv.gz, features.tsv.gz},
                              spatial/tissue_positions_list.csv (no header),
                              spatial/scalefactors_json.json,
                              spatial/tissue_lowres_image.png (no hires)
  visium/A1_sub/labels.csv    barcode,label
  h5ad/A1_sub_dense.h5ad      dense float32 X (gzip), obs label categorical (+ array_row/col),
                              uns/spatial/A1 hires uint8 + lowres float32
  h5ad/A1_sub_csr.h5ad        CSR int64 X, obs label as plain strings (+ array_row/col),
                              uns/spatial/A1 lowres uint8 only
  visium/bad/missing_indptr.h5   the .h5 without /matrix/indptr
  (visium/bad/heap_zero_offset_size.h5 is not written here: a Fuzz10xH5
   crash input, e4895fdd, kept as the fuzzer found it)
  h5ad/bad/{nan,negative}_X.h5ad dense X with one NaN (obs 3, var 5) / -1 (obs 7, var 2)
  h5ad/A1_sub_csc.h5ad        CSC float64 X, categorical labels, no uns/spatial
  fixture.json                the expected values (spot ids, barcodes,
                              genes, dense counts, x, y, labels) for tests
"""

import gzip
import io
import json
import os
import sys

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
HER2ST = os.environ.get("HER2ST", os.path.join(HERE, "..", "..", "shared", "data", "her2st"))

N_SPOTS = 40
N_GENES = 60
IMG_SCALE = 0.287604  # A1 PNG pixels per full-res pixel (HER2ST scalefactors.tsv)
FULL_W, FULL_H = 6954, 7435
SPOT_DIAMETER_FULLRES = 31.3 / IMG_SCALE  # 100 um spot, HER2ST README
FIDUCIAL_DIAMETER_FULLRES = SPOT_DIAMETER_FULLRES * 1.6153846  # ratio seen in real Visium scalefactors
HIRES_SCALEF = 0.05
LOWRES_SCALEF = 0.02
OFF_TISSUE = [(1, 1), (2, 1), (1, 2), (33, 35)]
GENE_TYPE = "Gene Expression"


def barcode(x, y):
    def enc(v):
        d = []
        for _ in range(8):
            d.append("ACGT"[v % 4])
            v //= 4
        return "".join(reversed(d))
    return enc(x) + enc(y) + "-1"


def read_inputs():
    counts = pd.read_csv(os.path.join(HER2ST, "counts", "A1.tsv.gz"), sep="\t", index_col=0)
    spots = pd.read_csv(os.path.join(HER2ST, "spots", "A1_selection.tsv"), sep="\t")
    spots["id"] = spots["x"].astype(str) + "x" + spots["y"].astype(str)
    spots = spots.set_index("id")
    lab = pd.read_csv(os.path.join(HER2ST, "labels", "A1_labeled_coordinates.tsv"), sep="\t")
    lab = lab.dropna(subset=["x", "y"])
    key = spots["new_x"].round(3).astype(str) + "_" + spots["new_y"].round(3).astype(str)
    byk = dict(zip(key, spots.index))
    labels = {}
    for _, r in lab.iterrows():
        k = str(round(r["x"], 3)) + "_" + str(round(r["y"], 3))
        labels[byk[k]] = r["label"]
    return counts, spots, labels


def main():
    counts, spots, labels = read_inputs()
    cand = [s for s in counts.index if s in labels]
    cand.sort(key=lambda s: (spots.loc[s, "pixel_x"] + spots.loc[s, "pixel_y"], s))
    chosen = set(cand[:N_SPOTS])
    ids = [s for s in counts.index if s in chosen]  # counts-file order
    sub = counts.loc[ids]
    tot = sub.sum(axis=0)
    order = sorted(range(len(tot)), key=lambda j: (-int(tot.iloc[j]), tot.index[j]))[:N_GENES]
    order.sort()
    genes = [str(counts.columns[j]) for j in order]
    X = sub.iloc[:, order].to_numpy().astype(np.int64)  # spots x genes
    assert X.shape == (N_SPOTS, N_GENES)
    bcs = [barcode(int(spots.loc[s, "x"]), int(spots.loc[s, "y"])) for s in ids]
    px = [float(spots.loc[s, "pixel_x"]) for s in ids]
    py = [float(spots.loc[s, "pixel_y"]) for s in ids]
    ax = [int(spots.loc[s, "x"]) for s in ids]
    ay = [int(spots.loc[s, "y"]) for s in ids]
    lbl = [labels[s] for s in ids]

    # Image crop anchored at the origin, covering every chosen spot + 1 spot.
    src = Image.open(os.path.join(HER2ST, "images", "A1_HE_image_dark.png")).convert("RGB")
    ext_full = max(max(px), max(py)) + SPOT_DIAMETER_FULLRES * 2
    crop_px = int(np.ceil(ext_full * IMG_SCALE))
    crop = src.crop((0, 0, crop_px, crop_px))
    def scaled(s):
        n = int(round(ext_full * s))
        return crop.resize((n, n), Image.LANCZOS)
    hires, lowres = scaled(HIRES_SCALEF), scaled(LOWRES_SCALEF)

    sf = {
        "spot_diameter_fullres": SPOT_DIAMETER_FULLRES,
        "tissue_hires_scalef": HIRES_SCALEF,
        "fiducial_diameter_fullres": FIDUCIAL_DIAMETER_FULLRES,
        "tissue_lowres_scalef": LOWRES_SCALEF,
    }

    # Off-tissue positions (not in A1's spot file).
    in_file = set(zip(spots["x"], spots["y"]))
    off = [(x, y) for x, y in OFF_TISSUE if (x, y) not in in_file]

    def positions_rows():
        rows = []
        for i in range(N_SPOTS):
            rows.append([bcs[i], 1, ay[i], ax[i], "%.2f" % py[i], "%.2f" % px[i]])
        for x, y in off:
            rows.append([barcode(x, y), 0, y, x, "%.2f" % ((y - 1) * FULL_H / 34), "%.2f" % ((x - 1) * FULL_W / 32)])
        rows.sort(key=lambda r: (r[2], r[3]))  # Space Ranger lists by array row, col
        return rows

    def save_png(img, path):
        img.save(path, optimize=True)

    # --- Space Ranger >= 2 flavour: .h5 + tissue_positions.csv ---
    outs = os.path.join(HERE, "visium", "A1_sub", "outs")
    os.makedirs(os.path.join(outs, "spatial"), exist_ok=True)
    adt = ["ADT_CD3", "ADT_CD19"]
    adt_counts = np.array([[i % 3 + 1, i % 5 + 1] for i in range(N_SPOTS)], dtype=np.int64)
    full = np.hstack([X, adt_counts])  # spots x features
    csc = sp.csc_matrix(full.T)
    with h5py.File(os.path.join(outs, "filtered_feature_bc_matrix.h5"), "w") as f:
        f.attrs["filetype"] = "matrix"
        f.attrs["library_ids"] = np.array([b"A1_sub"])
        f.attrs["chemistry_description"] = "Spatial 3' v1"
        f.attrs["software_version"] = "spotfuse fixture (HER2ST A1 subset)"
        m = f.create_group("matrix")
        m.create_dataset("barcodes", data=np.array([b.encode() for b in bcs], dtype="S18"))
        m.create_dataset("data", data=csc.data.astype(np.int32), compression="gzip", chunks=True)
        m.create_dataset("indices", data=csc.indices.astype(np.int64), compression="gzip", chunks=True)
        m.create_dataset("indptr", data=csc.indptr.astype(np.int64))
        m.create_dataset("shape", data=np.array(full.T.shape, dtype=np.int32))
        ft = m.create_group("features")
        names = genes + adt
        ft.create_dataset("id", data=np.array([n.encode() for n in names]))
        ft.create_dataset("name", data=np.array([n.encode() for n in names]))
        ft.create_dataset("feature_type", data=np.array([GENE_TYPE.encode()] * N_GENES + [b"Antibody Capture"] * 2))
        ft.create_dataset("genome", data=np.array([b"GRCh38"] * N_GENES + [b""] * 2))
        ft.create_dataset("_all_tag_keys", data=np.array([b"genome"]))
    with open(os.path.join(outs, "spatial", "tissue_positions.csv"), "w") as f:
        f.write("barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\n")
        for r in positions_rows():
            f.write(",".join(str(v) for v in r) + "\n")
    with open(os.path.join(outs, "spatial", "scalefactors_json.json"), "w") as f:
        json.dump(sf, f)
    save_png(hires, os.path.join(outs, "spatial", "tissue_hires_image.png"))
    save_png(lowres, os.path.join(outs, "spatial", "tissue_lowres_image.png"))
    with open(os.path.join(HERE, "visium", "A1_sub", "labels.csv"), "w") as f:
        f.write("barcode,label\n")
        for b, l in zip(bcs, lbl):
            f.write("%s,%s\n" % (b, l))

    # --- Space Ranger 1 flavour: MTX + tissue_positions_list.csv ---
    outs1 = os.path.join(HERE, "visium", "A1_sub_v1", "outs")
    mdir = os.path.join(outs1, "filtered_feature_bc_matrix")
    os.makedirs(mdir, exist_ok=True)
    os.makedirs(os.path.join(outs1, "spatial"), exist_ok=True)

    def gz(path, text):
        with open(path, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as g:
                g.write(text.encode())

    GT = X.T  # genes x barcodes
    nz = [(g, b, int(GT[g, b])) for b in range(N_SPOTS) for g in range(N_GENES) if GT[g, b] != 0]
    mtx = io.StringIO()
    mtx.write("%%MatrixMarket matrix coordinate integer general\n")
    mtx.write('%metadata_json: {"software_version": "spotfuse fixture", "format_version": 2}\n')
    mtx.write("%d %d %d\n" % (N_GENES, N_SPOTS, len(nz)))
    for g, b, v in nz:
        mtx.write("%d %d %d\n" % (g + 1, b + 1, v))
    gz(os.path.join(mdir, "matrix.mtx.gz"), mtx.getvalue())
    gz(os.path.join(mdir, "barcodes.tsv.gz"), "".join(b + "\n" for b in bcs))
    gz(os.path.join(mdir, "features.tsv.gz"), "".join("%s\t%s\t%s\n" % (g, g, GENE_TYPE) for g in genes))
    with open(os.path.join(outs1, "spatial", "tissue_positions_list.csv"), "w") as f:
        for r in positions_rows():
            f.write(",".join(str(v) for v in r) + "\n")
    with open(os.path.join(outs1, "spatial", "scalefactors_json.json"), "w") as f:
        json.dump(sf, f)
    save_png(lowres, os.path.join(outs1, "spatial", "tissue_lowres_image.png"))

    # --- AnnData ---
    hdir = os.path.join(HERE, "h5ad")
    os.makedirs(hdir, exist_ok=True)
    obs = pd.DataFrame(index=pd.Index(bcs))
    var = pd.DataFrame({"gene_ids": genes, "feature_types": [GENE_TYPE] * N_GENES}, index=pd.Index(genes))
    obsm = {"spatial": np.array([[px[i], py[i]] for i in range(N_SPOTS)], dtype=np.float64)}
    hires_u8 = np.asarray(hires, dtype=np.uint8)
    lowres_u8 = np.asarray(lowres, dtype=np.uint8)

    obs_d = obs.copy()
    obs_d["label"] = pd.Categorical(lbl)
    obs_d["array_row"] = ay
    obs_d["array_col"] = ax
    ad = anndata.AnnData(X=X.astype(np.float32), obs=obs_d, var=var.copy(), obsm=dict(obsm))
    ad.uns["spatial"] = {"A1": {
        "images": {"hires": hires_u8, "lowres": lowres_u8.astype(np.float32) / 255.0},
        "scalefactors": dict(sf),
        "metadata": {"source": "HER2ST A1 subset"},
    }}
    ad.write_h5ad(os.path.join(hdir, "A1_sub_dense.h5ad"), compression="gzip")

    obs_s = obs.copy()
    obs_s["label"] = np.array(lbl, dtype=object)
    obs_s["array_row"] = ay
    obs_s["array_col"] = ax
    ad = anndata.AnnData(X=sp.csr_matrix(X), dtype=X.dtype, obs=obs_s, var=var.copy(), obsm=dict(obsm))
    ad.uns["spatial"] = {"A1": {"images": {"lowres": lowres_u8}, "scalefactors": dict(sf)}}
    ad.write_h5ad(os.path.join(hdir, "A1_sub_csr.h5ad"))
    # anndata 0.8 writes string obs columns as categoricals; make this one a
    # plain string array so both layouts are covered.
    with h5py.File(os.path.join(hdir, "A1_sub_csr.h5ad"), "r+") as f:
        if "label" in f["obs"]:
            del f["obs"]["label"]
        d = f["obs"].create_dataset("label", data=np.array(lbl, dtype=object), dtype=h5py.string_dtype())
        d.attrs["encoding-type"] = "string-array"
        d.attrs["encoding-version"] = "0.2.0"

    # CSC X (float64), no uns/spatial (so no image), label as categorical.
    obs_c = obs.copy()
    obs_c["label"] = pd.Categorical(lbl)
    obs_c["array_row"] = ay
    obs_c["array_col"] = ax
    ad = anndata.AnnData(X=sp.csc_matrix(X.astype(np.float64)), dtype=np.float64, obs=obs_c, var=var.copy(), obsm=dict(obsm))
    ad.write_h5ad(os.path.join(hdir, "A1_sub_csc.h5ad"))

    # --- Bad inputs for the error tests (derived from the files above) ---
    bad = os.path.join(HERE, "visium", "bad")
    os.makedirs(bad, exist_ok=True)
    with h5py.File(os.path.join(outs, "filtered_feature_bc_matrix.h5"), "r") as src, \
            h5py.File(os.path.join(bad, "missing_indptr.h5"), "w") as dst:
        src.copy("matrix", dst)
        del dst["matrix"]["indptr"]
    hbad = os.path.join(hdir, "bad")
    os.makedirs(hbad, exist_ok=True)
    for name, i, j, v in [("nan_X.h5ad", 3, 5, np.nan), ("negative_X.h5ad", 7, 2, -1.0)]:
        Xb = X.astype(np.float32)
        Xb[i, j] = v
        anndata.AnnData(X=Xb, obs=pd.DataFrame(index=pd.Index(bcs)), var=pd.DataFrame(index=pd.Index(genes)),
                        obsm=dict(obsm)).write_h5ad(os.path.join(hbad, name))

    with open(os.path.join(HERE, "fixture.json"), "w") as f:
        json.dump({
            "section": "A1", "spot_ids": ids, "barcodes": bcs, "genes": genes,
            "counts": X.tolist(), "x": px, "y": py, "array_row": ay, "array_col": ax,
            "labels": lbl, "scalefactors": sf,
            "hires_size": list(hires.size), "lowres_size": list(lowres.size),
        }, f, indent=0)
    print("spots", N_SPOTS, "genes", N_GENES, "nnz", int((X != 0).sum()), "hires", hires.size, "lowres", lowres.size)


if __name__ == "__main__":
    sys.exit(main())

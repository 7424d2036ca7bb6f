#!/usr/bin/python3
"""Generate the small legacy-ST fixtures in this directory from the real her2st data.

Usage: /usr/bin/python3 gen.py [HER2ST_DIR]   (default ../../../../shared/data/her2st)

Writes (genuine values, only subset):
  counts/A1.tsv.gz                  first 20 spots x first 50 genes of A1
  spots/A1_selection.tsv            spot-file rows of those 20 spots + 17x14 (a spot without counts)
  labels/A1_labeled_coordinates.tsv label rows of those 21 spots
  expected.json                     row sums, nnz and label counts computed here (numpy) for the Go tests
"""
import gzip, json, os, sys
import numpy as np

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../../shared/data/her2st")
here = os.path.dirname(os.path.abspath(__file__))
NS, NG = 20, 50

with gzip.open(os.path.join(src, "counts/A1.tsv.gz"), "rt") as f:
    header = f.readline().rstrip("\n").split("\t")
    rows = [f.readline().rstrip("\n").split("\t") for _ in range(NS)]
genes = header[1:NG + 1]
ids = [r[0] for r in rows]
X = np.array([[int(v) for v in r[1:NG + 1]] for r in rows])
os.makedirs(os.path.join(here, "counts"), exist_ok=True)
with gzip.GzipFile(os.path.join(here, "counts/A1.tsv.gz"), "wb", mtime=0) as f:
    f.write(("\t".join([""] + genes) + "\n").encode())
    for i, r in zip(ids, X):
        f.write(("\t".join([i] + [str(v) for v in r]) + "\n").encode())

keep = set(ids) | {"17x14"}
os.makedirs(os.path.join(here, "spots"), exist_ok=True)
newxy = {}
with open(os.path.join(src, "spots/A1_selection.tsv")) as f, open(os.path.join(here, "spots/A1_selection.tsv"), "w") as g:
    g.write(f.readline())
    for line in f:
        p = line.rstrip("\n").split("\t")
        sid = f"{p[0]}x{p[1]}"
        if sid in keep:
            g.write(line)
            newxy[(round(float(p[2]), 3), round(float(p[3]), 3))] = sid

labels = {}
os.makedirs(os.path.join(here, "labels"), exist_ok=True)
with open(os.path.join(src, "labels/A1_labeled_coordinates.tsv")) as f, open(os.path.join(here, "labels/A1_labeled_coordinates.tsv"), "w") as g:
    g.write(f.readline())
    for line in f:
        p = line.rstrip("\n").split("\t")
        sid = newxy.get((round(float(p[1]), 3), round(float(p[2]), 3)))
        if sid is not None:
            g.write(line)
            if sid in ids:
                labels[sid] = p[5]

counts = {}
for l in labels.values():
    counts[l] = counts.get(l, 0) + 1
json.dump({
    "spots": ids, "genes": genes, "row_sums": X.sum(axis=1).tolist(), "nnz": int((X != 0).sum()),
    "x_0_0": int(X[0, 0]), "x_3_7": int(X[3, 7]), "labels": labels, "label_counts": counts,
}, open(os.path.join(here, "expected.json"), "w"), indent=1, sort_keys=True)

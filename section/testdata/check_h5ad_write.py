#!/usr/bin/python3
"""Check an .h5ad written by section.WriteH5AD with anndata and h5py.

Usage: /usr/bin/python3 check_h5ad_write.py FILE.h5ad EXPECTED.json

Run by TestWriteH5ADAnndata (section/h5ad_write_test.go), which writes
both files. Uses Debian's python3-anndata (0.8) and python3-h5py. Run it
from a directory without a sparse/ folder (the repo root has one, which
would shadow the sparse module dask imports).

Checks:
  * h5py opens the file and reads every object and attribute without a
    warning; every encoding-type/encoding-version/_index attribute is a
    scalar variable-length UTF-8 string, as anndata writes them;
  * anndata.read_h5ad succeeds without a warning; X (CSR), obs names, var
    names, var gene_ids, obs columns (strings as categoricals with missing
    values, floats with NaN), array_row/col, obsm['spatial'] and
    uns['spatial'][library]['scalefactors'] equal EXPECTED.json.
Prints "OK" and exits 0 when all hold; raises otherwise.
"""
import json
import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

import anndata

path, expected_path = sys.argv[1], sys.argv[2]
with open(expected_path) as f:
    exp = json.load(f)

# --- h5py: open, visit, read everything ---------------------------------
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with h5py.File(path, "r") as f:
        seen = []

        def check_attrs(name, obj):
            for key in obj.attrs:
                value = obj.attrs[key]  # decodes every attribute
                if key in ("encoding-type", "encoding-version", "_index"):
                    aid = obj.attrs.get_id(key)
                    space, typ = aid.get_space(), aid.get_type()
                    assert space.get_simple_extent_type() == h5py.h5s.SCALAR, (name, key, "not scalar")
                    assert typ.get_class() == h5py.h5t.STRING and typ.is_variable_str(), (name, key, "not vlen str")
                    assert typ.get_cset() == h5py.h5t.CSET_UTF8, (name, key, "not UTF-8")
                    assert isinstance(value, str), (name, key, type(value))

        def visit(name, obj):
            seen.append(name)
            check_attrs(name, obj)
            if isinstance(obj, h5py.Dataset):
                obj[()]

        check_attrs("/", f)
        f.visititems(visit)
        assert f.attrs["encoding-type"] == "anndata" and f.attrs["encoding-version"] == "0.1.0"
        assert f["X"].attrs["encoding-type"] == "csr_matrix"
        assert list(f["X"].attrs["shape"]) == [len(exp["obs_names"]), len(exp["var_names"])]
assert not caught, [str(w.message) for w in caught]
print(f"h5py: {len(seen)} objects read, no warnings")

# --- anndata -------------------------------------------------------------
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ad = anndata.read_h5ad(path)
assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]
print(ad)

assert list(ad.obs_names) == exp["obs_names"]
assert list(ad.var_names) == exp["var_names"]
assert list(ad.var["gene_ids"]) == exp["gene_ids"]
assert sp.isspmatrix_csr(ad.X), type(ad.X)
np.testing.assert_array_equal(ad.X.toarray(), np.array(exp["X"]))
np.testing.assert_array_equal(ad.obsm["spatial"], np.array(exp["spatial"]))
np.testing.assert_array_equal(ad.obs["array_row"].to_numpy(), exp["array_row"])
np.testing.assert_array_equal(ad.obs["array_col"].to_numpy(), exp["array_col"])
for name, want in exp["obs_str"].items():
    col = ad.obs[name]
    assert isinstance(col.dtype, pd.CategoricalDtype), (name, col.dtype)
    got = [None if pd.isna(v) else v for v in col]
    assert got == want, (name, got[:5], want[:5])
    assert list(col.cat.categories) == sorted({v for v in want if v is not None}), name
for name, want in exp["obs_float"].items():
    want = np.array([np.nan if v == "nan" else v for v in want], dtype=np.float64)
    np.testing.assert_array_equal(ad.obs[name].to_numpy(), want)
sf = ad.uns["spatial"][exp["library"]]["scalefactors"]
assert {k: float(v) for k, v in sf.items()} == exp["scalefactors"], sf
print("OK")

#!/usr/bin/python3
"""Record scikit-learn multinomial LogisticRegression references for
classify/logreg.go.

newton-cg is used because its tol reaches 1e-10; sklearn's lbfgs stops on a
fixed ftol with gradients ~1e-6.

Run with Debian's python3-sklearn 1.2.1:
    /usr/bin/python3 gen_logreg_golden.py > logreg_golden.json
"""
import json
import warnings

warnings.simplefilter("ignore")  # newton-cg warns about its line search at tol=1e-10

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

rng = np.random.default_rng(7)


def data(n, d, k, props, shift):
    y = rng.choice(k, size=n, p=props)
    means = rng.normal(scale=shift, size=(k, d))
    x = means[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d)
    x[:, -1] += 100  # an offset feature: standardisation must handle it
    return x.astype(np.float32), y


def case(name, x, y, k, C, class_weight):
    x64 = x.astype(np.float64)
    sc = StandardScaler().fit(x64)
    lr = LogisticRegression(multi_class="multinomial", C=C, class_weight=class_weight,
                            solver="newton-cg", tol=1e-10, max_iter=100000).fit(sc.transform(x64), y)
    xt = x[:20] + rng.normal(size=x[:20].shape).astype(np.float32)
    coef = lr.coef_
    icpt = lr.intercept_ - lr.intercept_.mean()
    return {
        "name": name, "n": len(y), "d": x.shape[1], "k": k, "c": C,
        "balanced": class_weight == "balanced",
        "x": [float(v) for v in x.ravel()], "y": y.tolist(),
        "coef": coef.ravel().tolist() if k > 2 else None,
        "intercept": icpt.tolist() if k > 2 else None,
        "x_test": [float(v) for v in xt.ravel()],
        "proba_test": lr.predict_proba(sc.transform(xt.astype(np.float64))).ravel().tolist(),
        "proba_train": lr.predict_proba(sc.transform(x64)).ravel().tolist(),
    }


cases = []
x, y = data(120, 5, 3, [0.4, 0.35, 0.25], 1.0)
cases.append(case("k3_C1", x, y, 3, 1.0, None))
cases.append(case("k3_C0.05", x, y, 3, 0.05, None))
x, y = data(200, 6, 4, [0.6, 0.25, 0.1, 0.05], 1.2)
cases.append(case("k4_imbalanced_balanced", x, y, 4, 0.5, "balanced"))
x, y = data(80, 3, 2, [0.7, 0.3], 1.0)
cases.append(case("binary_balanced", x, y, 2, 2.0, "balanced"))
print(json.dumps({"sklearn": sklearn.__version__, "cases": cases}))

#!/usr/bin/python3
"""Record scikit-learn reference values for package metrics.

Run with Debian's python3-sklearn (1.2.1):  /usr/bin/python3 gen_golden.py > golden.json
"""
import json
import numpy as np
from sklearn import metrics as skm

rng = np.random.default_rng(20261129)


def case(name, y_true, y_pred, k):
    y_true = [int(v) for v in y_true]
    y_pred = [int(v) for v in y_pred]
    labels = sorted(set(y_true) | set(y_pred))
    f1 = skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "name": name,
        "k": k,
        "y_true": y_true,
        "y_pred": y_pred,
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_labels": labels,
        "per_class_f1": [float(v) for v in f1],
        "ari": skm.adjusted_rand_score(y_true, y_pred),
        "nmi": skm.normalized_mutual_info_score(y_true, y_pred),
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=list(range(k))).tolist(),
    }


cases = []
cases.append(case("all_correct", [0, 1, 2, 2, 1, 0, 3], [0, 1, 2, 2, 1, 0, 3], 4))
cases.append(case("single_class_true_and_pred", [1] * 6, [1] * 6, 3))
cases.append(case("single_class_true", [0] * 8, [0, 0, 1, 2, 0, 1, 0, 0], 3))
cases.append(case("single_class_pred", [0, 1, 2, 0, 1, 2, 2], [2] * 7, 3))
cases.append(case("unseen_predicted_class", [0, 0, 1, 1, 2, 2], [0, 3, 1, 1, 2, 3], 4))
cases.append(case("permuted_labels", [0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1], 3))
cases.append(case("each_own_cluster", list(range(5)), list(range(5)), 5))
cases.append(case("binary", [0, 1, 1, 0, 1, 1, 0, 0, 1], [0, 1, 0, 0, 1, 1, 1, 0, 1], 2))
n = 200
cases.append(case("random_5", rng.integers(0, 5, n), rng.integers(0, 5, n), 5))
# Imbalanced 7-class like HER2ST A1..H1 region proportions; 70 % correct.
p = np.array([0.33, 0.25, 0.15, 0.12, 0.08, 0.05, 0.02])
yt = rng.choice(7, size=400, p=p)
yp = np.where(rng.random(400) < 0.7, yt, rng.choice(7, size=400, p=p))
cases.append(case("imbalanced_7", yt, yp, 7))
yt = rng.choice(7, size=300, p=p)
yp = np.where(rng.random(300) < 0.4, yt, rng.integers(0, 3, 300))
cases.append(case("imbalanced_7_collapsed_pred", yt, yp, 7))
cases.append(case("missing_true_class", [0, 0, 2, 2, 2, 0], [0, 1, 2, 2, 0, 0], 3))

x = rng.normal(size=50)
y = 0.6 * x + rng.normal(size=50)
cont = {
    "x": x.tolist(),
    "y": y.tolist(),
    "pearson": float(np.corrcoef(x, y)[0, 1]),
    "mean_x": float(np.mean(x)),
    "sd_x": float(np.std(x, ddof=1)),
}
print(json.dumps({"sklearn": __import__("sklearn").__version__, "cases": cases, "continuous": cont}))

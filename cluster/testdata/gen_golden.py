#!/usr/bin/python3
"""Record scikit-learn KMeans and networkx Louvain/modularity references for
package cluster.

Run with Debian's python3-sklearn 1.2.1 and python3-networkx 2.8.8:
    /usr/bin/python3 gen_golden.py > golden.json
"""
import json

import networkx as nx
import numpy as np
import sklearn
from networkx.algorithms import community
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

out = {"sklearn": sklearn.__version__, "networkx": nx.__version__}

# Well-separated blobs: float32 values so Go sees exactly the same data.
x, y = make_blobs(n_samples=150, centers=3, n_features=4, cluster_std=0.8, random_state=1)
x = x.astype(np.float32)
km = KMeans(n_clusters=3, n_init=10, random_state=0).fit(x.astype(np.float64))
out["kmeans"] = {
    "n": 150, "d": 4, "k": 3,
    "x": [float(v) for v in x.ravel()],
    "labels": km.labels_.tolist(),
    "inertia": float(km.inertia_),
}


def graph_case(name, G, truth=None):
    G = nx.convert_node_labels_to_integers(G)
    edges = [[int(u), int(v), float(d.get("weight", 1.0))] for u, v, d in G.edges(data=True)]
    comms = community.louvain_communities(G, weight="weight", resolution=1, seed=0)
    nxl = [0] * G.number_of_nodes()
    for c, members in enumerate(comms):
        for v in members:
            nxl[v] = c
    case = {
        "name": name,
        "n": G.number_of_nodes(),
        "edges": edges,
        "nx_louvain_labels": nxl,
        "nx_louvain_modularity": community.modularity(G, comms, weight="weight"),
    }
    # Modularity of fixed partitions at several resolutions, to check the formula.
    parts = {"nx_louvain": nxl, "halves": [int(v < G.number_of_nodes() // 2) for v in G.nodes]}
    if truth is not None:
        parts["truth"] = truth
        case["truth"] = truth
    case["modularity"] = []
    for pname, lab in parts.items():
        groups = {}
        for v, l in enumerate(lab):
            groups.setdefault(l, set()).add(v)
        for res in (0.5, 1.0, 2.0):
            case["modularity"].append({
                "partition": pname, "labels": lab, "resolution": res,
                "q": community.modularity(G, list(groups.values()), weight="weight", resolution=res),
            })
    return case


cases = []
G = nx.planted_partition_graph(4, 25, 0.5, 0.02, seed=7)
cases.append(graph_case("planted_4x25", G, [v // 25 for v in range(100)]))
G = nx.planted_partition_graph(3, 40, 0.3, 0.01, seed=11)
rng = np.random.default_rng(3)
for u, v in G.edges:
    G[u][v]["weight"] = float(rng.uniform(0.5, 2.0))
cases.append(graph_case("planted_weighted_3x40", G, [v // 40 for v in range(120)]))
cases.append(graph_case("karate", nx.karate_club_graph()))
G = nx.planted_partition_graph(10, 50, 0.2, 0.005, seed=5)
cases.append(graph_case("planted_10x50", G, [v // 50 for v in range(500)]))
out["graphs"] = cases
print(json.dumps(out))

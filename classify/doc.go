// Package classify turns spot embeddings into region labels: linear probes,
// MLP heads and fine-tuning on few labels, prediction, and the model bundle.
package classify

// Package pretrain learns spot encoders without labels: image pretext
// tasks (masked-region inpainting, colorization, SimCLR contrastive
// learning; image.go), expression pretext tasks (masked genes, NB-VAE;
// expr.go) and cross-modal alignment (cross.go), all driven by one training
// loop (loop.go).
//
// The loop runs a Task — anything that builds a scalar loss from a batch
// drawn with the loop's random source — under AdamW with a cosine schedule
// and linear warm-up, gradient clipping, held-out evaluation, atomic
// checkpoints (weights, BatchNorm statistics, optimizer moments, random
// state and history) and resume that reproduces an uninterrupted run bit
// for bit. A NaN or infinite loss or gradient stops training with an error
// naming the step and the likely cause. The loss history is written as
// loss.csv and loss.png.
//
// LinearProbe (probe.go) scores frozen embeddings by few-label logistic
// regression, to compare pretext tasks.
package pretrain

// Package models holds spotfuse's network architectures, without training
// loops: the image encoder (conv4 or a small ResNet) and the pixel decoders
// of the image pretext tasks (image.go, decoder.go), the expression encoder
// (expr.go) and the cross-modal model (cross.go).
//
// Every model exposes its trainable parameters with NamedParams (stable,
// deterministic names like "conv1.weight") and its non-trainable state
// (BatchNorm running statistics) with Buffers, so that it can be saved with
// nn.SaveSafetensors, loaded back and checkpointed by package pretrain.
package models

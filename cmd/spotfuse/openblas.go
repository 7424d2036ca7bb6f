package main

import (
	"testing"

	"github.com/spotfuse/spotfuse/tensor"
)

// Select the fastest OpenBLAS kernels before anything else runs: this may
// restart the process with OPENBLAS_CORETYPE set (see tensor.WantCoreType).
// Test binaries keep the environment they were started with.
func init() {
	if !testing.Testing() {
		tensor.UseBestOpenBLASCore()
	}
}

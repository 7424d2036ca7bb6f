package tensor

import (
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sys/cpu"
)

// OpenBLAS chooses its kernels once, when the library is loaded, from the
// CPU model or from the OPENBLAS_CORETYPE environment variable. Version
// 0.3.21 does not recognise the development machine's Xeon (AVX-512) and
// falls back to Prescott, its slowest (SSE3) kernels. Measured there,
// 1536³–1024³ sgemm on 2 threads: Prescott ~8 GFLOP/s vs SkylakeX 45 under
// the same heavy load; idle: SkylakeX 273, Cooperlake 250–277, Haswell 137.
//
// Because the choice is made before main runs, the only reliable way to
// change it is to start the process again with the variable set; a cgo
// constructor runs after the library's own initialiser.

// fastCores are OpenBLAS core names whose sgemm uses AVX-512 kernels.
var fastCores = map[string]bool{"SkylakeX": true, "Cooperlake": true, "SapphireRapids": true}

const reexecMarker = "SPOTFUSE_OPENBLAS_REEXEC"

// WantCoreType returns the OPENBLAS_CORETYPE this process should run with,
// or "" when the loaded kernels are already the best known for this CPU (or
// the backend is not OpenBLAS). SPOTFUSE_OPENBLAS_CORETYPE overrides the
// choice; its value "keep" disables it.
func WantCoreType() string {
	core := openblasCore()
	if core == "" {
		return ""
	}
	if o := os.Getenv("SPOTFUSE_OPENBLAS_CORETYPE"); o != "" {
		if o == "keep" || o == core {
			return ""
		}
		return o
	}
	avx512 := cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL
	if avx512 && !fastCores[core] {
		return "SkylakeX"
	}
	return ""
}

// UseBestOpenBLASCore re-executes the running program with
// OPENBLAS_CORETYPE set to WantCoreType() when that differs from the loaded
// kernels. It returns only if no restart is needed or the restart failed
// (logged). Call it first thing in main; it never restarts twice.
func UseBestOpenBLASCore() {
	want := WantCoreType()
	if want == "" || os.Getenv(reexecMarker) != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		slog.Warn("openblas: cannot find own executable to select kernels", "err", err)
		return
	}
	env := append(os.Environ(), "OPENBLAS_CORETYPE="+want, reexecMarker+"=1")
	err = syscall.Exec(exe, os.Args, env)
	slog.Warn("openblas: restart with OPENBLAS_CORETYPE failed", "want", want, "err", err)
}

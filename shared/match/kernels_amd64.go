package match

import "golang.org/x/sys/cpu"

// haveKernels is whether the SIMD kernels below may run (AVX2 and POPCNT).
var haveKernels = cpu.X86.HasAVX2 && cpu.X86.HasPOPCNT

//go:noescape
func indexFold3AVX2(b []byte, d1, d2 int, c, m uint32) int

//go:noescape
func indexLineEventAVX2(b []byte) int

//go:noescape
func scanLinesAVX2(b []byte, from, d1, d2 int, c, m uint32) (j, lines int)

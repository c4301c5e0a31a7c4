//go:build !amd64

package match

// haveKernels is false: there are no SIMD kernels for this architecture,
// so callers keep to line-by-line search (see Prefilter.LineScanner).
const haveKernels = false

func indexFold3AVX2(b []byte, d1, d2 int, c, m uint32) int { panic("match: no SIMD kernel") }

func indexLineEventAVX2(b []byte) int { panic("match: no SIMD kernel") }

func scanLinesAVX2(b []byte, from, d1, d2 int, c, m uint32) (j, lines int) {
	panic("match: no SIMD kernel")
}

package blobdataset

import (
	"errors"
	"math/bits"
)

// Bit coding for the index's buckets: hash gaps in Rice code, the gaps
// between the blocks of one token in Elias gamma code, block numbers in
// fixed width. The codes keep a posting at about 3 bytes, which is what
// holds the index to a few per cent of the data.

// bitWriter appends bits, most significant first, to buf.
type bitWriter struct {
	buf  []byte
	acc  uint64 // pending bits, right-aligned
	nacc uint   // how many
}

func (w *bitWriter) write(v uint64, n uint) {
	for n > 0 {
		k := min(n, 56-w.nacc)
		w.acc = w.acc<<k | (v>>(n-k))&(1<<k-1)
		w.nacc += k
		n -= k
		for w.nacc >= 8 {
			w.buf = append(w.buf, byte(w.acc>>(w.nacc-8)))
			w.nacc -= 8
		}
	}
}

// rice writes v as q = v>>k one bits, a zero bit, then the k low bits.
func (w *bitWriter) rice(v uint64, k uint) {
	for q := v >> k; q > 0; q-- {
		w.write(1, 1)
	}
	w.write(0, 1)
	w.write(v, k)
}

// gamma writes v >= 1 as n zero bits then the n+1 bits of v, n = ⌊log2 v⌋.
func (w *bitWriter) gamma(v uint64) {
	n := uint(bits.Len64(v) - 1)
	w.write(0, n)
	w.write(v, n+1)
}

// flush pads the last byte with zero bits.
func (w *bitWriter) flush() {
	if w.nacc > 0 {
		w.write(0, 8-w.nacc)
	}
}

// errCorrupt reports an index object that does not decode: it is bypassed.
var errCorrupt = errors.New("index object is corrupt")

// bitReader reads what bitWriter wrote; reading past the end fails with
// errCorrupt (sticky in err) and returns zeros.
type bitReader struct {
	buf []byte
	pos uint // bit position
	err error
}

func (r *bitReader) read(n uint) uint64 {
	var v uint64
	for ; n > 0; n-- {
		i := r.pos >> 3
		if i >= uint(len(r.buf)) {
			r.err = errCorrupt
			return 0
		}
		v = v<<1 | uint64(r.buf[i]>>(7-r.pos&7))&1
		r.pos++
	}
	return v
}

// maxQuotient bounds the quotient of a Rice code: the parameter is chosen
// from the mean gap, so quotients stay far below it (the encoder refuses
// to write more). maxGammaZeros bounds a gamma code's leading zeros.
const (
	maxQuotient   = 1 << 16
	maxGammaZeros = 64
)

func (r *bitReader) rice(k uint) uint64 {
	var q uint64
	for r.read(1) == 1 {
		if q++; q > maxQuotient || r.err != nil {
			r.err = errCorrupt
			return 0
		}
	}
	return q<<k | r.read(k)
}

func (r *bitReader) gamma() uint64 {
	var n uint
	for r.read(1) == 0 {
		if n++; n >= maxGammaZeros || r.err != nil {
			r.err = errCorrupt
			return 0
		}
	}
	return 1<<n | r.read(n)
}

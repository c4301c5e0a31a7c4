package blobdataset

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// Index objects are authenticated piece by piece, so that a lookup, which
// reads only some pieces, still notices a corrupt or tampered one (a flipped
// bit in a bucket could otherwise drop a token and hide a record): the
// header, each bucket (with its entry count) and each block table entry
// carry a MAC keyed by the index secret and bound to the dataset, the blob
// and the blob version indexed, so that no piece of another index, or of
// an older index of the same blob, passes either.

// indexMAC computes the MACs of one index object.
type indexMAC struct {
	h   hash.Hash
	buf []byte
	sum []byte
}

// newIndexMAC keys the MACs of the index of version etag of blob in
// dataset.
func newIndexMAC(secret []byte, dataset, blob, etag string) *indexMAC {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("dsr-index/1 mac\x00" + dataset + "\x00" + blob + "\x00" + etag))
	return &indexMAC{h: hmac.New(sha256.New, k.Sum(nil))}
}

// of returns the 32-bit MAC of a piece: its kind, a number (bucket or
// block), a count and its bytes.
func (m *indexMAC) of(kind byte, num, count uint64, data []byte) uint32 {
	m.buf = append(m.buf[:0], kind)
	m.buf = binary.BigEndian.AppendUint64(m.buf, num)
	m.buf = binary.BigEndian.AppendUint64(m.buf, count)
	m.h.Reset()
	m.h.Write(m.buf)
	m.h.Write(data)
	m.sum = m.h.Sum(m.sum[:0])
	return binary.BigEndian.Uint32(m.sum)
}

// MAC kinds.
const (
	macHeader = 'h'
	macBucket = 'b'
	macBlock  = 't'
)

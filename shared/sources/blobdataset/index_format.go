package blobdataset

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
)

// The index object of one blob. It holds positions and keyed hashes, never
// a raw value:
//
//	magic "DSRIDX01", uint32 length L, header JSON (L bytes, indexHeader),
//	        uint32 MAC of the header
//	fanout  (1<<FanoutBits)+1 entries of uint32 byte offset into the buckets,
//	        uint32 count of the entries before the bucket and uint32 MAC of
//	        the bucket (index_mac.go)
//	blocks  Blocks+1 entries of uint64 byte offset, uint64 first ordinal
//	        and uint32 MAC; the last is the end of the last record and the
//	        record count
//	buckets bit-coded (hash, block) entries sorted by hash then block
//
// (all integers big-endian). A token's hash is the top HashBits bits of a
// keyed 40-bit hash; its bucket is the top FanoutBits of those. A lookup
// reads the header, then only the fanout entries, buckets and block
// entries its hashes need, so its cost does not grow with the blob.
//
// A block is a run of whole records of about indexBlockBytes: tokens map to
// blocks, not records, which keeps postings short; discovery fetches the
// candidate blocks and matches their records as a scan does.

// indexMagic starts every index object; the digits are the format version.
const indexMagic = "DSRIDX02"

// indexVersion is the format version in the header; an index of another
// version is stale. Version 2 hashes tokens with SipHash (tokenKey), where
// version 1 used HMAC-SHA256: the token hashes differ, so every version 1
// index is rebuilt.
const indexVersion = 2

// indexBlockBytes is the size of data a block covers (records are never
// split, so a block may be longer).
var indexBlockBytes int64 = 8 << 10

// Limits of the format.
const (
	hashBitsMax   = 40 // bits of a token's keyed hash kept while building
	blockBitsMax  = 24 // blocks a blob may have: 2^24 of indexBlockBytes
	fanoutBitsMax = 20
	// fanoutTarget is the number of entries a bucket is sized for.
	fanoutTarget = 64
	fanoutEntry  = 12
	blockEntry   = 20
	headerFixed  = len(indexMagic) + 4 + 4 // magic, length, MAC
)

// indexHeader describes an index object. Every field is a count, a
// position, a hash or a name from the config: nothing from the data.
type indexHeader struct {
	Version int `json:"v"`
	// Key names the secret the token hashes were keyed with (a hash of
	// it): an index made with another secret is stale.
	Key string `json:"key"`
	// Rules is a hash of the dataset's matching config (identifiers, free
	// text, relations, phone region): an index made under others is
	// stale, its tokens no longer what discovery looks up.
	Rules   string `json:"rules"`
	Dataset string `json:"dataset"`
	// Blob is a hash of the blob's name (indexName).
	Blob string `json:"blob"`
	// ETag and Size are the version indexed.
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
	Format string `json:"format"`
	// Records and Blocks count the blob's records and the index's blocks;
	// Entries the (hash, block) entries.
	Records int64 `json:"records"`
	Blocks  int64 `json:"blocks"`
	Entries int64 `json:"entries"`
	// HashBits, FanoutBits, RiceBits and BlockBits parameterise the codes.
	HashBits   uint `json:"hashBits"`
	FanoutBits uint `json:"fanoutBits"`
	RiceBits   uint `json:"riceBits"`
	BlockBits  uint `json:"blockBits"`
	// Section offsets in the object, and its total size.
	FanoutOff  int64 `json:"fanoutOff"`
	BlocksOff  int64 `json:"blocksOff"`
	BucketsOff int64 `json:"bucketsOff"`
	End        int64 `json:"end"`
}

// encodeHeader returns the magic, length, JSON and MAC of h.
func encodeHeader(h *indexHeader, mac *indexMAC) []byte {
	j, _ := json.Marshal(h)
	out := make([]byte, 0, headerFixed+len(j))
	out = append(out, indexMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(j)))
	out = append(out, j...)
	return binary.BigEndian.AppendUint32(out, mac.of(macHeader, 0, 0, j))
}

// layoutHeader sets the section offsets of h, which depend on the
// length of the encoded header, and returns the encoded header.
func layoutHeader(h *indexHeader, mac *indexMAC, fanoutBytes, blockBytes, bucketBytes int64) []byte {
	for {
		b := encodeHeader(h, mac)
		n := int64(len(b))
		if h.FanoutOff == n {
			return b
		}
		h.FanoutOff = n
		h.BlocksOff = n + fanoutBytes
		h.BucketsOff = h.BlocksOff + blockBytes
		h.End = h.BucketsOff + bucketBytes
	}
}

// errOtherFormat reports an index object of another format version (one
// written before an upgrade): stale, not corrupt, so it is bypassed
// quietly and rebuilt, not reported and deleted.
var errOtherFormat = errors.New("index object is of another format version")

// otherFormat reports whether b starts with the magic of another version.
func otherFormat(b []byte) bool {
	base := len(indexMagic) - 2
	return len(b) >= len(indexMagic) && string(b[:base]) == indexMagic[:base] && string(b[:len(indexMagic)]) != indexMagic
}

// maxHeader bounds the header JSON a reader accepts.
const maxHeader = 4 << 10

// headerNeed is how many bytes from the object's start hold its header,
// as far as the first bytes b tell (0 if they do not).
func headerNeed(b []byte) int64 {
	if len(b) < len(indexMagic)+4 {
		return 0
	}
	return int64(headerFixed) + int64(binary.BigEndian.Uint32(b[len(indexMagic):]))
}

// decodeHeader reads the header at the start of b (the object's first
// bytes), checks its MAC (mac nil: unchecked, for tests) and that its
// sections are consistent.
func decodeHeader(b []byte, mac *indexMAC) (*indexHeader, error) {
	if otherFormat(b) {
		return nil, errOtherFormat
	}
	if len(b) < headerFixed || string(b[:len(indexMagic)]) != indexMagic {
		return nil, errCorrupt
	}
	n := int(binary.BigEndian.Uint32(b[len(indexMagic):]))
	start := len(indexMagic) + 4
	if n > maxHeader || start+n+4 > len(b) {
		return nil, errCorrupt
	}
	if mac != nil && binary.BigEndian.Uint32(b[start+n:]) != mac.of(macHeader, 0, 0, b[start:start+n]) {
		return nil, fmt.Errorf("%w (header MAC)", errCorrupt)
	}
	var h indexHeader
	dec := json.NewDecoder(bytes.NewReader(b[start : start+n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, errCorrupt
	}
	fanout := (int64(1)<<h.FanoutBits + 1) * fanoutEntry
	switch {
	case h.Version != indexVersion:
		return nil, fmt.Errorf("%w (version %d)", errCorrupt, h.Version)
	case h.HashBits == 0 || h.HashBits > hashBitsMax || h.FanoutBits > min(h.HashBits, fanoutBitsMax) ||
		h.RiceBits > h.HashBits || h.BlockBits == 0 || h.BlockBits > blockBitsMax:
		return nil, errCorrupt
	case h.Records < 0 || h.Blocks < 0 || h.Blocks > h.Records || h.Blocks > 1<<h.BlockBits || h.Entries < 0:
		return nil, errCorrupt
	case h.FanoutOff != int64(start+n+4) || h.BlocksOff != h.FanoutOff+fanout ||
		h.BucketsOff != h.BlocksOff+(h.Blocks+1)*blockEntry || h.End < h.BucketsOff:
		return nil, errCorrupt
	}
	return &h, nil
}

// bitsFor is the number of bits that hold values below n (at least 1).
func bitsFor(n int64) uint {
	if n <= 2 {
		return 1
	}
	return uint(bits.Len64(uint64(n - 1)))
}

// codeParams chooses the codes' parameters for entries (hash, block)
// pairs of which distinct have distinct hashes, over blocks blocks: hashes
// of about log2(distinct)+7 bits, so that another token shares a looked-up
// hash with odds of about 1 in 128 (a shared hash only adds a candidate
// block, which the exact rules then turn down); buckets of about
// fanoutTarget entries; the Rice parameter of the mean gap between hashes.
func codeParams(entries, distinct, blocks int64) (hashBits, fanoutBits, riceBits, blockBits uint) {
	hashBits = min(hashBitsMax, bitsFor(max(distinct, 1))+7)
	fanoutBits = 0
	if entries > fanoutTarget {
		fanoutBits = min(bitsFor(entries/fanoutTarget), fanoutBitsMax, hashBits)
	}
	// The mean gap between distinct hashes is 2^hashBits / distinct.
	riceBits = hashBits - min(hashBits, bitsFor(max(distinct, 1)))
	blockBits = bitsFor(max(blocks, 1))
	return
}

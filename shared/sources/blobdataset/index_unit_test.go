package blobdataset

import (
	"context"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// TestBitCodes round-trips Rice, gamma and fixed-width codes.
func TestBitCodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type op struct {
		kind byte
		v    uint64
		n    uint
	}
	var ops []op
	var w bitWriter
	for range 5000 {
		switch rng.IntN(3) {
		case 0:
			k := uint(rng.IntN(12))
			v := rng.Uint64N(1 << (k + 4))
			w.rice(v, k)
			ops = append(ops, op{'r', v, k})
		case 1:
			v := 1 + rng.Uint64N(1<<uint(1+rng.IntN(40)))
			w.gamma(v)
			ops = append(ops, op{'g', v, 0})
		default:
			n := uint(1 + rng.IntN(40))
			v := rng.Uint64N(1 << n)
			w.write(v, n)
			ops = append(ops, op{'w', v, n})
		}
	}
	w.flush()
	r := bitReader{buf: w.buf}
	for i, o := range ops {
		var got uint64
		switch o.kind {
		case 'r':
			got = r.rice(o.n)
		case 'g':
			got = r.gamma()
		default:
			got = r.read(o.n)
		}
		if got != o.v || r.err != nil {
			t.Fatalf("op %d (%c): got %d, want %d (err %v)", i, o.kind, got, o.v, r.err)
		}
	}
	// Reading past the end fails, never loops.
	r.read(64)
	r.gamma()
	if r.err == nil {
		t.Fatal("reading past the end did not fail")
	}
}

// TestPairSorterMerges checks that spilled runs merge into one sorted
// sequence, read twice.
func TestPairSorterMerges(t *testing.T) {
	old := sortRunPairs
	sortRunPairs = 100
	t.Cleanup(func() { sortRunPairs = old })
	rng := rand.New(rand.NewPCG(5, 6))
	s := newPairSorter()
	defer s.close()
	var want []uint64
	for range 1234 {
		p := rng.Uint64()
		want = append(want, p)
		if err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	for range 2 {
		var got []uint64
		if err := s.each(func(p uint64) error { got = append(got, p); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("merged %d pairs, not the %d sorted ones", len(got), len(want))
		}
	}
	if len(s.runs) < 10 {
		t.Fatalf("%d runs; the test meant to spill", len(s.runs))
	}
}

// memIndexStore serves one index object from memory.
type memIndexStore struct{ data []byte }

func (s memIndexStore) get(_ context.Context, _, _ string, off, count int64) ([]byte, string, int64, error) {
	end := int64(len(s.data))
	if count > 0 {
		end = min(end, off+count)
	}
	return s.data[off:end], `"idx"`, int64(len(s.data)), nil
}
func (memIndexStore) props(context.Context, string) (string, map[string]string, error) {
	return "", nil, errIndexGone
}
func (memIndexStore) list(context.Context, string) (map[string]indexObject, error) {
	return nil, nil
}
func (memIndexStore) put(context.Context, string, io.Reader, string, map[string]string) error {
	return nil
}
func (memIndexStore) del(context.Context, string, string) error { return nil }

// TestIndexEncodingFindsEveryBlock builds an index from random token
// hashes (frequent and rare ones, many sharing their truncated bits) and
// checks that a lookup of each hash returns every block that holds it.
func TestIndexEncodingFindsEveryBlock(t *testing.T) {
	for _, spill := range []int{1 << 20, 300} {
		old, oldBlock := sortRunPairs, indexBlockBytes
		sortRunPairs, indexBlockBytes = spill, 1000
		rng := rand.New(rand.NewPCG(9, uint64(spill)))
		universe := make([]uint64, 3000)
		for i := range universe {
			universe[i] = rng.Uint64() >> (64 - hashBitsMax)
		}
		d := &sources.Dataset{Name: "d", Blob: "b", Format: sources.FormatNDJSON}
		cfg := &sources.Config{Version: 1, Datasets: []sources.Dataset{*d}}
		c := &Connector{cfg: cfg, index: newIndexer(memIndexStore{}, "", testIndexSecret, nil)}
		mac := newIndexMAC(testIndexSecret, d.Name, blobID(d.Name, "b"), `"e"`)
		b, err := newIndexBuilder(mac, d.Format)
		if err != nil {
			t.Fatal(err)
		}
		want := map[uint64][]int64{}
		const recLen = 100 // 10 records a block
		for i := range int64(20000) {
			var toks []uint64
			for range rng.IntN(4) {
				// Squared: some hashes are in most blocks, most in few.
				k := rng.IntN(len(universe))
				toks = append(toks, universe[k*k/len(universe)])
			}
			for _, h := range toks {
				if w := want[h]; len(w) == 0 || w[len(w)-1] != i/10 {
					want[h] = append(want[h], i/10)
				}
			}
			if err := b.add(i*recLen, recLen, i, toks); err != nil {
				t.Fatal(err)
			}
		}
		b.etag, b.size = `"e"`, 20000*recLen
		if err := b.finish(); err != nil {
			t.Fatal(err)
		}
		open, size, err := b.object(c, d, "b")
		if err != nil {
			t.Fatal(err)
		}
		obj, err := io.ReadAll(open())
		if err != nil || int64(len(obj)) != size {
			t.Fatalf("object: %d bytes of %d, %v", len(obj), size, err)
		}
		b.close()
		sortRunPairs, indexBlockBytes = old, oldBlock
		h, err := decodeHeader(obj, mac)
		if err != nil {
			t.Fatal(err)
		}
		l := &indexLookup{store: memIndexStore{obj}, etag: `"idx"`, h: h, mac: mac, probe: obj}
		extra := 0
		for _, x := range universe {
			got, err := l.blocks(context.Background(), []uint64{x})
			if err != nil {
				t.Fatal(err)
			}
			for _, blk := range want[x] {
				if _, ok := slices.BinarySearch(got, blk); !ok {
					t.Fatalf("hash %x: block %d missing from the lookup (%d blocks found, %d expected)", x, blk, len(got), len(want[x]))
				}
			}
			extra += len(got) - len(want[x])
		}
		t.Logf("run limit %d: %d entries, %d index bytes for %d data bytes; %d extra candidate blocks over %d lookups",
			spill, h.Entries, len(obj), b.size, extra, len(universe))
	}
}

// TestPairSorterRadix sorts runs large enough for the radix sort: pairs
// added block after block, as a build adds them (hashes repeat across
// blocks), and pairs in no order at all, which the radix sort alone would
// leave unsorted within a hash; both come out in increasing order, over
// two runs and the pairs left in memory.
func TestPairSorterRadix(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	hashes := make([]uint64, 5000)
	for i := range hashes {
		hashes[i] = rng.Uint64() >> (64 - hashBitsMax)
	}
	for _, ordered := range []bool{true, false} {
		s := &pairSorter{limit: 3 * radixMin / 2}
		var want []uint64
		for block := uint64(0); len(want) < 4*radixMin; block++ {
			for range 40 {
				p := hashes[rng.IntN(len(hashes))]<<blockBitsMax | block
				if !ordered {
					p = rng.Uint64()
				}
				want = append(want, p)
				if err := s.add(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		var got []uint64
		if err := s.each(func(p uint64) error { got = append(got, p); return nil }); err != nil {
			t.Fatal(err)
		}
		s.close()
		slices.Sort(want)
		if len(s.runs) < 2 || !slices.Equal(got, want) {
			t.Fatalf("ordered %v: %d runs; %d pairs out, sorted %v, equal %v", ordered, len(s.runs), len(got), slices.IsSorted(got), slices.Equal(got, want))
		}
	}
}

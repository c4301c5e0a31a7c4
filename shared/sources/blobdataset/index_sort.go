package blobdataset

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// pairSorter sorts the (hash, block) pairs of an index build in bounded
// memory: pairs collect in memory up to a limit, then go, sorted, as a run
// to a temporary file; each merges the runs. A build's memory so does not
// grow with the blob.
type pairSorter struct {
	mem []uint64
	// scratch is the radix sort's second buffer.
	scratch []uint64
	limit   int
	file    *os.File
	w       *bufio.Writer
	runs    []sortRun
	n       int64
}

type sortRun struct{ off, n int64 }

// sortRunPairs is how many pairs (8 bytes each) a build holds in memory
// before it writes a run. A variable so that tests can spill small data.
var sortRunPairs = 1 << 20

func newPairSorter() *pairSorter {
	return &pairSorter{limit: sortRunPairs}
}

func (s *pairSorter) add(p uint64) error {
	if len(s.mem) == cap(s.mem) {
		s.grow()
	}
	s.mem = append(s.mem, p)
	s.n++
	if len(s.mem) >= s.limit {
		return s.spill()
	}
	return nil
}

// grow makes room for more pairs: a buffer a finished build gave back
// if there is one, else twice the room, up to the limit. append's own
// growth, a quarter at a time past a few hundred pairs, copied each
// pair about four times and was a twentieth of a build's CPU.
func (s *pairSorter) grow() {
	if s.mem == nil {
		if buf, ok := pairBuffers.Get().(*[]uint64); ok {
			s.mem = (*buf)[:0]
			return
		}
	}
	bigger := make([]uint64, len(s.mem), min(max(2*cap(s.mem), 1<<12), s.limit))
	copy(bigger, s.mem)
	s.mem = bigger
}

// pairBuffers keeps the pair and scratch buffers of finished builds for
// the next ones (a fan-out builds many blobs in a row); the garbage
// collector empties it when it is not used.
var pairBuffers sync.Pool

// spill writes the pairs in memory as one sorted run.
func (s *pairSorter) spill() error {
	if s.file == nil {
		f, err := os.CreateTemp("", "dsr-index-*.runs")
		if err != nil {
			return fmt.Errorf("index build: temporary file: %w", err)
		}
		s.file, s.w = f, bufio.NewWriterSize(f, 256<<10)
	}
	s.sort()
	start := int64(0)
	if k := len(s.runs); k > 0 {
		start = s.runs[k-1].off + s.runs[k-1].n*8
	}
	var b [8]byte
	for _, p := range s.mem {
		binary.BigEndian.PutUint64(b[:], p)
		if _, err := s.w.Write(b[:]); err != nil {
			return fmt.Errorf("index build: write run: %w", err)
		}
	}
	s.runs = append(s.runs, sortRun{start, int64(len(s.mem))})
	s.mem = s.mem[:0]
	return nil
}

// finish ends adding: the pairs in memory are sorted, runs flushed.
func (s *pairSorter) finish() error {
	s.sort()
	if s.w != nil {
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("index build: write run: %w", err)
		}
	}
	return nil
}

// radixMin is the run from which sort uses a radix sort.
const radixMin = 1 << 16

// sort sorts the pairs in memory. A run of many is sorted by its hashes
// (the top hashBitsMax bits) with a stable radix sort, 10 bits a pass,
// in a fifth of a comparison sort's time: a block's pairs are added after
// the previous block's, so pairs of one hash are already in block order
// and a stable sort by hash sorts them whole. That order is checked, and
// a comparison sort finishes the job if it ever does not hold.
func (s *pairSorter) sort() {
	if len(s.mem) < radixMin {
		slices.Sort(s.mem)
		return
	}
	if cap(s.scratch) < len(s.mem) {
		buf, ok := pairBuffers.Get().(*[]uint64)
		switch {
		case ok && cap(*buf) >= len(s.mem):
			s.scratch = *buf
		default:
			if ok {
				pairBuffers.Put(buf)
			}
			s.scratch = make([]uint64, len(s.mem), cap(s.mem))
		}
	}
	src, dst := s.mem, s.scratch[:len(s.mem)]
	const bits = 10
	for shift := uint(blockBitsMax); shift < 64; shift += bits {
		var count [1 << bits]int
		for _, p := range src {
			count[(p>>shift)&(1<<bits-1)]++
		}
		at := 0
		for d, n := range count {
			count[d] = at
			at += n
		}
		for _, p := range src {
			d := (p >> shift) & (1<<bits - 1)
			dst[count[d]] = p
			count[d]++
		}
		src, dst = dst, src
	}
	// Four passes: the sorted pairs are back in s.mem.
	if !slices.IsSorted(s.mem) {
		slices.Sort(s.mem)
	}
}

// each calls fn with every pair in increasing order (after finish); it
// may be called more than once.
func (s *pairSorter) each(fn func(uint64) error) error {
	if len(s.runs) == 0 {
		for _, p := range s.mem {
			if err := fn(p); err != nil {
				return err
			}
		}
		return nil
	}
	h := &runHeap{}
	for _, r := range s.runs {
		src := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(s.file, r.off, r.n*8), 32<<10), left: r.n}
		if ok, err := src.next(); err != nil {
			return err
		} else if ok {
			h.items = append(h.items, src)
		}
	}
	if len(s.mem) > 0 {
		mem := &runReader{mem: s.mem, left: int64(len(s.mem))}
		mem.next()
		h.items = append(h.items, mem)
	}
	heap.Init(h)
	for h.Len() > 0 {
		top := h.items[0]
		if err := fn(top.cur); err != nil {
			return err
		}
		ok, err := top.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// close removes the temporary file and gives the buffers back.
func (s *pairSorter) close() {
	for _, buf := range []*[]uint64{&s.mem, &s.scratch} {
		if cap(*buf) > 0 {
			b := (*buf)[:0]
			pairBuffers.Put(&b)
		}
		*buf = nil
	}
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
}

// runReader reads one sorted run, from the file or from memory.
type runReader struct {
	r    *bufio.Reader
	mem  []uint64
	left int64
	cur  uint64
}

func (r *runReader) next() (bool, error) {
	if r.left == 0 {
		return false, nil
	}
	r.left--
	if r.r == nil {
		r.cur, r.mem = r.mem[0], r.mem[1:]
		return true, nil
	}
	var b [8]byte
	if _, err := io.ReadFull(r.r, b[:]); err != nil {
		return false, fmt.Errorf("index build: read run: %w", err)
	}
	r.cur = binary.BigEndian.Uint64(b[:])
	return true, nil
}

type runHeap struct{ items []*runReader }

func (h *runHeap) Len() int           { return len(h.items) }
func (h *runHeap) Less(i, j int) bool { return h.items[i].cur < h.items[j].cur }
func (h *runHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *runHeap) Push(x any)         { h.items = append(h.items, x.(*runReader)) }
func (h *runHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

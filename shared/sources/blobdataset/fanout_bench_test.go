package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

// sizedThrottledStore is throttledStore (per-stream latency and bandwidth,
// as a remote store serves one download) over a shardStore that tells
// blob sizes, so discovery can plan shards.
type sizedThrottledStore struct {
	throttledStore
	shards *shardStore
}

func (s sizedThrottledStore) sizes(_ context.Context, _, prefix, _ string) (map[string]blobProps, error) {
	out := map[string]blobProps{}
	for i := 0; i+1 < len(s.shards.cuts); i++ {
		out[s.shards.name(i)] = blobProps{size: s.shards.cuts[i+1] - s.shards.cuts[i], etag: fmt.Sprintf(`"%d"`, i)}
	}
	return out, nil
}

// BenchmarkFanout: discovery of 1 and 1,000 subjects over the 100 MiB file as a
// dataset of 16 blobs behind a store that answers each blob after 20 ms
// and streams it at 50 MB/s (Blob Storage's one-stream bandwidth is a
// fraction of an instance's), fanned out in 16 shards over 1 to 16
// concurrent invocations, each scanning one blob at a time. The job, shard
// results and markers go to Azurite, as in the product. One op is a whole
// discovery: plan, every shard, and the discovery that takes the result.
// x-linear is the speed-up over one invocation divided by the
// invocations; the floor is the data over the invocations' bandwidth.
func BenchmarkFanout(b *testing.B) {
	requireBench(b)
	needAzurite(b)
	path := scanData(b, 100)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	st, err := newShardStore(path, "activity/", 16)
	if err != nil {
		b.Fatal(err)
	}
	store := sizedThrottledStore{throttledStore{st, 20 * time.Millisecond, 50e6}, st}
	acct := azuritetest.Account(b)
	for _, n := range []int{1, scanSubjects} {
		benchFanout(b, acct, store, fi.Size(), benchSubjects(n, false))
	}
}

func benchFanout(b *testing.B, acct *blobs.Account, store blobStore, size int64, subjects []sources.Subject) {
	var one time.Duration
	for _, workers := range []int{1, 2, 4, 8, 16} {
		b.Run(fmt.Sprintf("subjects=%d/invocations=%d", len(subjects), workers), func(b *testing.B) {
			state := azuritetest.Container(b, acct, "state")
			msgs := make(chan ShardMessage, 64)
			c := localConnector(scanConfig(scanDataset("", "activity/")), store, 1)
			done := make(chan struct{}, 1)
			WithFanout(Fanout{
				Container: acct.Service.NewContainerClient(state), Secret: []byte("bench"),
				ShardBytes: size/16 + 64<<10, // a blob a shard
				Send: func(_ context.Context, _ string, body []byte) error {
					m, err := ParseShardMessage(body)
					if err == nil {
						msgs <- m
					}
					return err
				},
				Completed: func(context.Context, []string) { done <- struct{}{} },
			})(c)
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for m := range msgs {
						if err := c.RunShard(context.Background(), m); err != nil {
							b.Error(err)
							done <- struct{}{}
						}
					}
				})
			}
			b.SetBytes(size)
			var records int64
			var plan, shards, collect time.Duration
			start := time.Now()
			for b.Loop() {
				// Each op is a new stage: a job planned before it is no answer.
				ctx := sources.WithWaiters(context.Background(), waitersSince(len(subjects), time.Now()))
				t0 := time.Now()
				_, err := c.DiscoverMany(ctx, subjects)
				if !errors.Is(err, sources.ErrPending) {
					b.Fatalf("discovery did not fan out: %v", err)
				}
				t1 := time.Now()
				<-done
				t2 := time.Now()
				if b.Failed() {
					b.FailNow()
				}
				ds, err := c.DiscoverMany(ctx, subjects)
				if err != nil {
					b.Fatal(err)
				}
				records = 0
				for _, d := range ds {
					records += d.Total()
				}
				plan, shards, collect = plan+t1.Sub(t0), shards+t2.Sub(t1), collect+time.Since(t2)
			}
			per := time.Since(start) / time.Duration(b.N)
			close(msgs)
			wg.Wait()
			if workers == 1 {
				one = per
			}
			if one > 0 {
				b.ReportMetric(float64(one)/float64(per)/float64(workers), "x-linear")
			}
			floor := float64(size) / (50e6 * float64(min(workers, 16)))
			b.ReportMetric(per.Seconds()/floor, "x-floor")
			b.ReportMetric(float64(records), "records")
			b.ReportMetric(plan.Seconds()/float64(b.N), "plan-s")
			b.ReportMetric(shards.Seconds()/float64(b.N), "shards-s")
			b.ReportMetric(collect.Seconds()/float64(b.N), "collect-s")
		})
	}
}

func waitersSince(n int, since time.Time) []sources.Waiter {
	ws := make([]sources.Waiter, n)
	for i := range ws {
		ws[i] = sources.Waiter{ID: fmt.Sprintf("r%d", i), Since: since}
	}
	return ws
}

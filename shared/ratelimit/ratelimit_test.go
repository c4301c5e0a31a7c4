package ratelimit_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/ratelimit"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

const secret = "ratelimit-test-secret-0123456789"

// clock is a settable clock, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }

func stateContainer(t *testing.T) *container.Client {
	acct := azuritetest.Account(t)
	return acct.Service.NewContainerClient(azuritetest.Container(t, acct, "state"))
}

type stored struct {
	body     string
	metadata map[string]*string
}

// dump reads every blob of a container: name → body and metadata.
func dump(t *testing.T, cc *container.Client) map[string]stored {
	t.Helper()
	ctx := context.Background()
	out := map[string]stored{}
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			resp, err := cc.NewBlobClient(*it.Name).DownloadStream(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out[*it.Name] = stored{string(b), it.Metadata}
		}
	}
	return out
}

func hmacHex(name, key string) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(name + "\x00" + key))
	return hex.EncodeToString(h.Sum(nil))
}

func allow(t *testing.T, l *ratelimit.Limiter, lim ratelimit.Limit, key string) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), lim, key)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	t0      = time.Date(2026, 3, 4, 10, 20, 0, 0, time.UTC)
	address = ratelimit.Limit{Name: "portal-address", Max: 3, Window: time.Hour}
	ip      = ratelimit.Limit{Name: "portal-ip", Max: 2, Window: time.Hour}
)

func TestMaxThenRefusedUntilNextWindow(t *testing.T) {
	cc := stateContainer(t)
	clk := newClock(t0)
	l := ratelimit.New(cc, []byte(secret), clk.now)
	const key = "avery.morgan@contoso.example"
	for i := 1; i <= address.Max; i++ {
		if d := allow(t, l, address, key); !d.Allowed || d.Remaining != address.Max-i || d.RetryAfter != 0 {
			t.Fatalf("call %d: %+v, want allowed with %d remaining", i, d, address.Max-i)
		}
	}
	// The window is 10:00–11:00 UTC: refused until 11:00, and refusals
	// are not counted.
	for range 3 {
		if d := allow(t, l, address, key); d.Allowed || d.Remaining != 0 || d.RetryAfter != 40*time.Minute {
			t.Fatalf("call over Max: %+v, want refused for 40m", d)
		}
	}
	clk.set(time.Date(2026, 3, 4, 10, 59, 59, 500_000_000, time.UTC))
	if d := allow(t, l, address, key); d.Allowed || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("just before the window ends: %+v, want refused for 500ms", d)
	}
	blobs := dump(t, cc)
	if len(blobs) != 1 {
		t.Fatalf("blobs after one window: %v", slices.Collect(maps.Keys(blobs)))
	}
	for name, b := range blobs {
		if want := fmt.Sprintf("ratelimit/%012d/portal-address/%012d/%s", t0.Truncate(time.Hour).Add(time.Hour).Unix(), t0.Truncate(time.Hour).Unix(), hmacHex(address.Name, key)); name != want {
			t.Errorf("blob %s, want %s", name, want)
		}
		if !strings.Contains(b.body, `"count":3`) {
			t.Errorf("count after 3 allowed and 4 refused calls: %s", b.body)
		}
	}

	// A new window allows again.
	clk.set(time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC))
	if d := allow(t, l, address, key); !d.Allowed || d.Remaining != address.Max-1 {
		t.Fatalf("next window: %+v, want allowed", d)
	}
}

func TestWindowsAlignToEpoch(t *testing.T) {
	cc := stateContainer(t)
	at := time.Date(2026, 3, 4, 10, 20, 0, 0, time.FixedZone("CET", 3600))
	l := ratelimit.New(cc, []byte(secret), func() time.Time { return at })
	daily := ratelimit.Limit{Name: "daily", Max: 1, Window: 24 * time.Hour}
	allow(t, l, daily, "k")
	d := allow(t, l, daily, "k")
	// 10:20 CET is 09:20 UTC: the day window ends at midnight UTC.
	if d.Allowed || d.RetryAfter != 14*time.Hour+40*time.Minute {
		t.Fatalf("daily window: %+v, want refused until midnight UTC", d)
	}
	midnight := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	want := fmt.Sprintf("ratelimit/%012d/daily/%012d/%s", midnight.Add(24*time.Hour).Unix(), midnight.Unix(), hmacHex("daily", "k"))
	if _, ok := dump(t, cc)[want]; !ok {
		t.Fatalf("no blob %s", want)
	}
}

func TestKeysAndLimitsAreIndependent(t *testing.T) {
	l := ratelimit.New(stateContainer(t), []byte(secret), newClock(t0).now)
	// The same string under two limits: counted apart.
	const shared = "203.0.113.7"
	for range ip.Max {
		allow(t, l, ip, shared)
	}
	if d := allow(t, l, ip, shared); d.Allowed {
		t.Fatal("ip limit not reached")
	}
	if d := allow(t, l, address, shared); !d.Allowed || d.Remaining != address.Max-1 {
		t.Fatalf("another limit, same key: %+v", d)
	}
	// Another key under the exhausted limit: its own count.
	if d := allow(t, l, ip, "198.51.100.23"); !d.Allowed || d.Remaining != ip.Max-1 {
		t.Fatalf("another key, same limit: %+v", d)
	}
	if d := allow(t, l, ip, shared); d.Allowed {
		t.Fatal("the exhausted key was allowed again")
	}
}

// Twenty callers on two limiters (two app instances) over one container
// race on one key: exactly Max get through.
func TestConcurrentCallersAcrossInstances(t *testing.T) {
	cc := stateContainer(t)
	clk := newClock(t0)
	instances := []*ratelimit.Limiter{ratelimit.New(cc, []byte(secret), clk.now), ratelimit.New(cc, []byte(secret), clk.now)}
	lim := ratelimit.Limit{Name: "portal-address", Max: 5, Window: time.Hour}
	const callers = 20
	var (
		wg              sync.WaitGroup
		allowed, denied atomic.Int32
		errs            = make(chan error, callers)
		start           = make(chan struct{})
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			d, err := instances[i%2].Allow(context.Background(), lim, "avery.morgan@contoso.example")
			switch {
			case err != nil:
				errs <- err
			case d.Allowed:
				allowed.Add(1)
			default:
				denied.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if allowed.Load() != 5 || denied.Load() != callers-5 {
		t.Fatalf("allowed %d, refused %d; want 5 and %d", allowed.Load(), denied.Load(), callers-5)
	}
	for name, b := range dump(t, cc) {
		if !strings.Contains(b.body, `"count":5`) {
			t.Errorf("%s: %s, want count 5", name, b.body)
		}
	}
}

func TestNoRawKeyStored(t *testing.T) {
	cc := stateContainer(t)
	l := ratelimit.New(cc, []byte(secret), newClock(t0).now)
	const email, addr = "avery.morgan@contoso.example", "203.0.113.7"
	for range 4 {
		allow(t, l, address, email)
		allow(t, l, ip, addr)
	}
	blobs := dump(t, cc)
	if len(blobs) != 2 {
		t.Fatalf("blobs: %v", slices.Collect(maps.Keys(blobs)))
	}
	for name, b := range blobs {
		parts := []string{name, b.body}
		for k, v := range b.metadata {
			parts = append(parts, k, *v)
		}
		for _, p := range parts {
			for _, raw := range []string{email, "avery.morgan", "contoso", addr, "203.0.113"} {
				if strings.Contains(strings.ToLower(p), raw) {
					t.Errorf("blob %s holds %q: %q", name, raw, p)
				}
			}
		}
	}
	for _, want := range []string{hmacHex(address.Name, email), hmacHex(ip.Name, addr)} {
		found := false
		for name, b := range blobs {
			found = found || strings.HasSuffix(name, "/"+want) && strings.Contains(b.body, want)
		}
		if !found {
			t.Errorf("no blob named and filled with hash %s", want)
		}
	}

	// Errors name the hash, never the key.
	acct := azuritetest.Account(t)
	missing := ratelimit.New(acct.Service.NewContainerClient("no-such-container"), []byte(secret), newClock(t0).now)
	_, err := missing.Allow(context.Background(), address, email)
	if err == nil {
		t.Fatal("Allow on a missing container succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, email) || strings.Contains(msg, "avery") || !strings.Contains(msg, hmacHex(address.Name, email)) {
		t.Fatalf("error %q: want the hash and not the key", msg)
	}
}

func TestSweepDeletesOnlyEndedWindows(t *testing.T) {
	cc := stateContainer(t)
	ctx := context.Background()
	clk := newClock(t0)
	l := ratelimit.New(cc, []byte(secret), clk.now)
	daily := ratelimit.Limit{Name: "daily", Max: 5, Window: 24 * time.Hour}
	// Hour windows that ended 72h20m, 25h20m, 24h20m, 23h20m and 2h20m
	// ago, and the running one; a day window that ended 10h20m ago
	// (midnight UTC), and the running one.
	for _, at := range []time.Time{t0.Add(-73 * time.Hour), t0.Add(-26 * time.Hour), t0.Add(-25 * time.Hour), t0.Add(-24 * time.Hour), t0.Add(-3 * time.Hour), t0} {
		clk.set(at)
		allow(t, l, address, "a@x.example")
	}
	for _, at := range []time.Time{t0.Add(-24 * time.Hour), t0} {
		clk.set(at)
		allow(t, l, daily, "a@x.example")
	}
	// Blobs that are not windows stay, under the prefix or not.
	for _, name := range []string{"ratelimit/README", "ratelimit/000000000001/x", "requests/r1.json"} {
		if _, err := cc.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(strings.NewReader("{}")), nil); err != nil {
			t.Fatal(err)
		}
	}
	before := dump(t, cc)
	clk.set(t0)
	n, err := l.Sweep(ctx, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	after := dump(t, cc)
	cutoff := t0.Add(-24 * time.Hour)
	var gone []string
	for name := range before {
		if _, ok := after[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	// Ended at or before the cutoff: 72h20m, 25h20m and 24h20m ago.
	want := []string{
		windowName(address, t0.Add(-73*time.Hour), "a@x.example"),
		windowName(address, t0.Add(-26*time.Hour), "a@x.example"),
		windowName(address, t0.Add(-25*time.Hour), "a@x.example"),
	}
	if n != 3 || !slices.Equal(gone, want) {
		t.Fatalf("Sweep deleted %d: %v, want %v (cutoff %s)", n, gone, want, cutoff)
	}
	// The running window keeps its count.
	if d := allow(t, l, address, "a@x.example"); !d.Allowed || d.Remaining != address.Max-2 {
		t.Fatalf("after Sweep: %+v", d)
	}
	if n, err := l.Sweep(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("second Sweep: %d %v", n, err)
	}
	// With no margin, every ended window goes; nothing running does.
	if n, err := l.Sweep(ctx, 0); err != nil || n != 3 {
		t.Fatalf("Sweep(0): %d %v, want the hour windows 23h20m and 2h20m ago and yesterday's day window", n, err)
	}
	if _, err := l.Sweep(ctx, -time.Hour); err == nil {
		t.Fatal("a negative olderThan was accepted")
	}
	left := slices.Sorted(maps.Keys(dump(t, cc)))
	wantLeft := slices.Sorted(slices.Values([]string{
		"ratelimit/README", "ratelimit/000000000001/x", "requests/r1.json",
		windowName(address, t0, "a@x.example"), windowName(daily, t0, "a@x.example"),
	}))
	if !slices.Equal(left, wantLeft) {
		t.Fatalf("left %v, want %v", left, wantLeft)
	}
}

func windowName(lim ratelimit.Limit, at time.Time, key string) string {
	start := at.Truncate(lim.Window) // UTC-based for these windows
	return fmt.Sprintf("ratelimit/%012d/%s/%012d/%s", start.Add(lim.Window).Unix(), lim.Name, start.Unix(), hmacHex(lim.Name, key))
}

func TestShortSecretRefused(t *testing.T) {
	cc := stateContainer(t)
	ctx := context.Background()
	l := ratelimit.New(cc, []byte("fifteen-bytes!!"), nil)
	if _, err := l.Allow(ctx, address, "a@x.example"); !errors.Is(err, ratelimit.ErrShortSecret) {
		t.Fatalf("Allow with a 15-byte secret: %v", err)
	}
	if _, err := l.Sweep(ctx, time.Hour); !errors.Is(err, ratelimit.ErrShortSecret) {
		t.Fatalf("Sweep with a 15-byte secret: %v", err)
	}
	if _, err := ratelimit.New(cc, nil, nil).Allow(ctx, address, "a@x.example"); !errors.Is(err, ratelimit.ErrShortSecret) {
		t.Fatalf("Allow without a secret: %v", err)
	}
	if len(dump(t, cc)) != 0 {
		t.Fatal("a refused limiter wrote")
	}
	if d, err := ratelimit.New(cc, []byte("sixteen-bytes!!!"), nil).Allow(ctx, address, "a@x.example"); err != nil || !d.Allowed {
		t.Fatalf("16-byte secret: %+v %v", d, err)
	}
}

func TestInvalidCalls(t *testing.T) {
	l := ratelimit.New(stateContainer(t), []byte(secret), newClock(t0).now)
	for _, lim := range []ratelimit.Limit{
		{Name: "", Max: 1, Window: time.Hour},
		{Name: "a/b", Max: 1, Window: time.Hour},
		{Name: "x", Max: 0, Window: time.Hour},
		{Name: "x", Max: 1, Window: 0},
		{Name: "x", Max: 1, Window: 1500 * time.Millisecond},
	} {
		if _, err := l.Allow(context.Background(), lim, "k"); err == nil {
			t.Errorf("Allow(%+v) accepted", lim)
		}
	}
	if _, err := l.Allow(context.Background(), address, ""); err == nil {
		t.Error("an empty key was accepted")
	}
}

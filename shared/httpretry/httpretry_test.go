package httpretry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"  7 ", 7 * time.Second, true},
		{"0", 0, true},
		{"3600", time.Minute, true}, // capped
		{"-1", 0, false},
		{"soon", 0, false},
		{"Sat, 28 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sat, 28 Nov 2026 11:00:00 GMT", 0, true},           // in the past
		{"Sun, 29 Nov 2026 12:00:00 GMT", time.Minute, true}, // capped
	} {
		got, ok := RetryAfter(tc.v, now, time.Minute)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep after cancel = %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("Sleep did not return when its context ended")
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) on an ended context = %v", err)
	}
}

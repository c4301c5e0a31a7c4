package funchost

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// HostSettings are the host.json settings the local host mirrors, so a
// laptop runs queue functions as concurrently as Azure does.
type HostSettings struct {
	// MaxConcurrentCalls is extensions.serviceBus.maxConcurrentCalls: how
	// many messages of one Service Bus function run at once per instance.
	MaxConcurrentCalls int
	// MaxAutoLockRenewal is extensions.serviceBus.maxAutoLockRenewalDuration.
	MaxAutoLockRenewal time.Duration
}

// ReadHostSettings reads host.json's Service Bus settings; absent ones are
// zero (the LocalHost defaults then apply).
func ReadHostSettings(path string) (HostSettings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return HostSettings{}, fmt.Errorf("host.json: %w", err)
	}
	var h struct {
		Extensions struct {
			ServiceBus struct {
				MaxConcurrentCalls         int    `json:"maxConcurrentCalls"`
				MaxAutoLockRenewalDuration string `json:"maxAutoLockRenewalDuration"`
			} `json:"serviceBus"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return HostSettings{}, fmt.Errorf("host.json: %w", err)
	}
	sb := h.Extensions.ServiceBus
	if sb.MaxConcurrentCalls < 0 {
		return HostSettings{}, fmt.Errorf("host.json: extensions.serviceBus.maxConcurrentCalls must not be negative")
	}
	s := HostSettings{MaxConcurrentCalls: sb.MaxConcurrentCalls}
	if v := sb.MaxAutoLockRenewalDuration; v != "" {
		if s.MaxAutoLockRenewal, err = parseTimeSpan(v); err != nil {
			return HostSettings{}, fmt.Errorf("host.json: extensions.serviceBus.maxAutoLockRenewalDuration: %w", err)
		}
	}
	return s, nil
}

// parseTimeSpan reads a .NET TimeSpan as host.json writes it: [d.]hh:mm:ss.
func parseTimeSpan(v string) (time.Duration, error) {
	var days int
	if d, rest, ok := strings.Cut(v, "."); ok && !strings.Contains(d, ":") {
		if _, err := fmt.Sscanf(d, "%d", &days); err != nil {
			return 0, fmt.Errorf("%q is not a time span such as 00:05:00", v)
		}
		v = rest
	}
	var h, m, s int
	if n, err := fmt.Sscanf(v, "%d:%d:%d", &h, &m, &s); err != nil || n != 3 || m > 59 || s > 59 || h < 0 || m < 0 || s < 0 {
		return 0, fmt.Errorf("%q is not a time span such as 00:05:00", v)
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second, nil
}

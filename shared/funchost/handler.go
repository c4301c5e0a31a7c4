package funchost

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/dsr-functions/dsr/shared/problem"
)

// QueueFunc handles one queue message. A nil error completes the message; an
// error fails the invocation (non-2xx), so the host abandons and redelivers
// it. The error text reaches logs: it must not hold personal data.
type QueueFunc func(ctx context.Context, m *QueueMessage) error

// Registry is the Go implementation of each function, by function name.
type Registry struct {
	HTTP  map[string]http.Handler
	Queue map[string]QueueFunc
	Timer map[string]TimerFunc
	// Serves lists, for an HTTP function whose function.json declares more
	// methods than it implements, the methods it implements. The Functions
	// host answers a method no function declares on a route with a bare
	// 404, so one function per route declares every other method too, and
	// the handler answers those 405 with the route's Allow header. A
	// function absent here serves every method it declares; GET implies
	// HEAD.
	Serves map[string][]string
}

// maxInvocationBytes bounds an invocation payload (Service Bus Premium
// messages reach 100 MB; ours carry ids only).
const maxInvocationBytes = 1 << 20

// NewHandler builds the custom handler's HTTP server: GET / answers the
// host's readiness probe, forwarded HTTP functions are served at their
// /api/... routes, and invocation payloads (queue messages, timer ticks) at
// /<functionName>. Every function
// in fns must have an implementation in reg and vice versa.
func NewHandler(fns []Function, reg Registry, log *slog.Logger) (http.Handler, error) {
	mux := http.NewServeMux()
	// Usage is tracked per kind: an HTTP implementation registered under the
	// name of a queue function serves nothing and is reported.
	usedHTTP, usedQueue, usedTimer := map[string]bool{}, map[string]bool{}, map[string]bool{}
	allow, err := allowed(fns, reg.Serves)
	if err != nil {
		return nil, err
	}
	for _, f := range fns {
		switch f.Trigger().Type {
		case HTTPTrigger:
			h := reg.HTTP[f.Name]
			if h == nil {
				return nil, fmt.Errorf("function %s: no HTTP implementation registered", f.Name)
			}
			served := f.ServedPatterns(reg.Serves[f.Name])
			for _, p := range f.Patterns() {
				method, route, _ := strings.Cut(p, " ")
				switch {
				case served[p]:
					err = register(mux, p, h)
				case method == http.MethodHead && served[http.MethodGet+" "+route]:
					// The GET pattern serves HEAD too.
				default:
					err = register(mux, p, methodNotAllowed(allow[route]))
				}
				if err != nil {
					return nil, fmt.Errorf("function %s: route %q: %w", f.Name, p, err)
				}
			}
			usedHTTP[f.Name] = true
		case ServiceBusTrigger:
			qf := reg.Queue[f.Name]
			if qf == nil {
				return nil, fmt.Errorf("function %s: no queue implementation registered", f.Name)
			}
			if err := register(mux, "POST /"+f.Name, invocationHandler(f, qf, log)); err != nil {
				return nil, fmt.Errorf("function %s: %w", f.Name, err)
			}
			usedQueue[f.Name] = true
		case TimerTrigger:
			tf := reg.Timer[f.Name]
			if tf == nil {
				return nil, fmt.Errorf("function %s: no timer implementation registered", f.Name)
			}
			if _, err := f.Schedule(); err != nil {
				return nil, fmt.Errorf("function %s: %w", f.Name, err)
			}
			if err := register(mux, "POST /"+f.Name, timerHandler(f, tf, log)); err != nil {
				return nil, fmt.Errorf("function %s: %w", f.Name, err)
			}
			usedTimer[f.Name] = true
		default:
			return nil, fmt.Errorf("function %s: trigger %s has no implementation", f.Name, f.Trigger().Type)
		}
	}
	var extra []string
	for name := range reg.Serves {
		if !usedHTTP[name] {
			return nil, fmt.Errorf("Serves names %s, which is no HTTP function", name)
		}
	}
	for name := range reg.HTTP {
		if !usedHTTP[name] {
			extra = append(extra, name)
		}
	}
	for name := range reg.Queue {
		if !usedQueue[name] {
			extra = append(extra, name)
		}
	}
	for name := range reg.Timer {
		if !usedTimer[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("implementations without a function.json: %s", strings.Join(extra, ", "))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "", "no function serves this method and path"))
	})
	return mux, nil
}

// allowed returns, by route path (as in Patterns), the methods the
// functions on it serve, in Allow header order. A function's Serves entry
// must be a subset of what its function.json declares.
func allowed(fns []Function, serves map[string][]string) (map[string]string, error) {
	byRoute := map[string]map[string]bool{}
	for _, f := range fns {
		if f.Trigger().Type != HTTPTrigger {
			continue
		}
		declared := map[string]bool{}
		for _, p := range f.Patterns() {
			declared[p] = true
		}
		for p := range f.ServedPatterns(serves[f.Name]) {
			if !declared[p] {
				return nil, fmt.Errorf("function %s serves %s, which its function.json does not declare", f.Name, p)
			}
			method, route, _ := strings.Cut(p, " ")
			if byRoute[route] == nil {
				byRoute[route] = map[string]bool{}
			}
			byRoute[route][method] = true
			if method == http.MethodGet {
				byRoute[route][http.MethodHead] = true
			}
		}
	}
	out := make(map[string]string, len(byRoute))
	for route, methods := range byRoute {
		var list []string
		for _, m := range AllMethods {
			if methods[m] {
				list = append(list, m)
			}
		}
		out[route] = strings.Join(list, ", ")
	}
	return out, nil
}

// methodNotAllowed answers a method a route's function declares (so that
// the host forwards it) but no function on that route serves.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "",
			"this path accepts only "+allow))
	})
}

// invocationReply writes an invocation response: always application/json,
// always a body (an empty 2xx body would leave the host waiting).
func invocationReply(w http.ResponseWriter) func(status int, logs ...string) {
	return func(status int, logs ...string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if logs == nil {
			logs = []string{}
		}
		_ = json.NewEncoder(w).Encode(InvokeResponse{Outputs: map[string]any{}, Logs: logs})
	}
}

// serveInvocation serves one non-HTTP function: it decodes the invocation
// payload, lets decode read the trigger value (an error is a bad payload,
// 400), runs the function (an error fails the invocation, 500) and replies
// per the host contract.
func serveInvocation(f Function, log *slog.Logger, decode func(req *InvokeRequest, invocationID string) (run func(context.Context) error, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply := invocationReply(w)
		var req InvokeRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxInvocationBytes))
		if err := dec.Decode(&req); err != nil {
			log.Error("invalid invocation payload", "function", f.Name, "err", err)
			reply(http.StatusBadRequest, "invalid invocation payload")
			return
		}
		run, err := decode(&req, r.Header.Get("X-Azure-Functions-InvocationId"))
		if err != nil {
			log.Error("invalid invocation payload", "function", f.Name, "err", err)
			reply(http.StatusBadRequest, err.Error())
			return
		}
		if err := run(r.Context()); err != nil {
			log.Warn("invocation failed", "function", f.Name, "err", err)
			reply(http.StatusInternalServerError, fmt.Sprintf("%s failed: %v", f.Name, err))
			return
		}
		reply(http.StatusOK)
	})
}

func invocationHandler(f Function, qf QueueFunc, log *slog.Logger) http.Handler {
	binding := f.Trigger().Name
	return serveInvocation(f, log, func(req *InvokeRequest, invocationID string) (func(context.Context) error, error) {
		m, err := DecodeQueueMessage(req, binding)
		if err != nil {
			return nil, err
		}
		m.Function, m.InvocationID = f.Name, invocationID
		return func(ctx context.Context) error {
			if err := qf(ctx, m); err != nil {
				return fmt.Errorf("delivery %d: %w", m.DeliveryCount, err)
			}
			return nil
		}, nil
	})
}

func timerHandler(f Function, tf TimerFunc, log *slog.Logger) http.Handler {
	binding := f.Trigger().Name
	return serveInvocation(f, log, func(req *InvokeRequest, invocationID string) (func(context.Context) error, error) {
		info, err := DecodeTimerInfo(req, binding)
		if err != nil {
			return nil, err
		}
		info.Function, info.InvocationID = f.Name, invocationID
		if info.IsPastDue {
			log.Info("timer is past due", "function", f.Name)
		}
		return func(ctx context.Context) error { return tf(ctx, info) }, nil
	})
}

// HostTokenHeader carries LocalHost.HostToken to the handler.
const HostTokenHeader = "X-Dsr-Host-Token"

// RequireHostToken serves only requests that carry token in
// HostTokenHeader (compared in constant time); others get 401. `dsr local`
// and the tests set a random token per run, which the local host sends. An
// empty token serves everyone: in Azure the handler listens on the
// worker's loopback for the Functions host (FUNCTIONS_CUSTOMHANDLER_PORT),
// which is the trust boundary (SECURITY.md).
func RequireHostToken(next http.Handler, token string) http.Handler {
	if token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(HostTokenHeader)), []byte(token)) != 1 {
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "host-token-required", "",
				"this port serves the local Functions host only; call the host's address instead"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

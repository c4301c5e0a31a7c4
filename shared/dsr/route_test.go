package dsr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// legalMoves are every transition the routes allow, written out by hand
// (not derived from Routes), per type: forward moves as "from>to".
var legalMoves = map[Type][]string{
	TypeAccess:        {"intake>identity", "intake>discovery", "identity>discovery", "discovery>approval", "discovery>export", "approval>export", "export>done"},
	TypeDiscovery:     {"intake>identity", "intake>discovery", "identity>discovery", "discovery>approval", "discovery>done", "approval>done"},
	TypeErasure:       {"intake>identity", "intake>discovery", "identity>discovery", "discovery>approval", "discovery>erasure", "approval>erasure", "erasure>verification", "verification>notification", "verification>done", "notification>done"},
	TypeRectification: {"intake>identity", "intake>discovery", "identity>discovery", "discovery>approval", "discovery>rectification", "approval>rectification", "rectification>verification", "verification>notification", "verification>done", "notification>done"},
	TypeRestriction:   {"intake>identity", "intake>discovery", "identity>discovery", "discovery>approval", "discovery>restriction", "approval>restriction", "restriction>notification", "restriction>done", "notification>done"},
	TypePortability:   {"intake>identity", "intake>discovery", "identity>discovery", "discovery>approval", "discovery>export", "approval>export", "export>transmission", "export>done", "transmission>done"},
}

// stateAt is the state a request has at each stage.
var stateAt = map[Stage]State{
	StageIntake: StateReceived, StageIdentity: StateAwaitingVerification, StageDiscovery: StateInProgress, StageExport: StateInProgress,
	StageApproval: StateAwaitingApproval, StageErasure: StateInProgress, StageRectification: StateInProgress,
	StageRestriction: StateInProgress, StageVerification: StateInProgress, StageNotification: StateInProgress, StageTransmission: StateInProgress, StageDone: StateCompleted,
}

var allStages = []Stage{StageIntake, StageIdentity, StageDiscovery, StageExport, StageApproval, StageErasure, StageRectification, StageRestriction, StageVerification, StageNotification, StageTransmission, StageDone}

// TestEveryIllegalTransitionIsRefused tries every move between every
// (stage, state) pair for every type: exactly the hand-written legal ones
// pass, through Advance as well as CheckTransition.
func TestEveryIllegalTransitionIsRefused(t *testing.T) {
	for _, typ := range Types {
		legal := map[string]bool{}
		onRoute := map[Stage]bool{}
		for _, m := range legalMoves[typ] {
			from, to, _ := strings.Cut(m, ">")
			legal[fmt.Sprintf("%s/%s>%s/%s", from, stateAt[Stage(from)], to, stateAt[Stage(to)])] = true
			onRoute[Stage(from)], onRoute[Stage(to)] = true, true
		}
		for st := range onRoute {
			if !stateAt[st].Terminal() {
				legal[fmt.Sprintf("%s/%s>%s/%s", st, stateAt[st], st, StateFailed)] = true
				legal[fmt.Sprintf("%s/%s>%s/%s", st, stateAt[st], st, StateCancelled)] = true
				if stateAt[st] != StateAwaitingApproval && stateAt[st] != StateAwaitingVerification {
					// A failed request is re-driven where it failed.
					legal[fmt.Sprintf("%s/%s>%s/%s", st, StateFailed, st, stateAt[st])] = true
				}
			}
		}
		// Every type has an approval step (access and discovery take it
		// only for a repeat request, Art. 12(5)), and may be refused there.
		legal["approval/awaiting_approval>approval/rejected"] = true
		legal["identity/awaiting_verification>identity/expired"] = true
		tried, allowed := 0, 0
		for _, from := range allStages {
			for _, fromState := range States {
				for _, to := range allStages {
					for _, toState := range States {
						key := fmt.Sprintf("%s/%s>%s/%s", from, fromState, to, toState)
						if from == to && fromState == toState {
							continue // a repeat: Advance's no-op, not a move
						}
						tried++
						err := CheckTransition(typ, from, fromState, to, toState)
						if legal[key] != (err == nil) {
							t.Errorf("%s: %s: allowed %v, want %v (%v)", typ, key, err == nil, legal[key], err)
						}
						if err != nil {
							if !errors.Is(err, ErrTransition) {
								t.Errorf("%s: %s: error %v does not wrap ErrTransition", typ, key, err)
							}
							// Advance refuses it too and changes nothing.
							r := Request{Type: typ, Stage: from, State: fromState, History: []HistoryEntry{{Stage: from, State: fromState}}}
							if ok, aerr := r.Advance(to, toState, time.Now(), 1, ""); ok || aerr == nil || r.Stage != from || r.State != fromState || len(r.History) != 1 {
								t.Errorf("%s: Advance %s: %v %v, request now %s/%s", typ, key, ok, aerr, r.Stage, r.State)
							}
						} else {
							allowed++
						}
					}
				}
			}
		}
		if allowed != len(legal) {
			t.Errorf("%s: %d moves allowed, %d legal", typ, allowed, len(legal))
		}
		t.Logf("%s: %d moves tried, %d allowed", typ, tried, allowed)
	}
	// A request starts at intake, received, and nowhere else.
	if err := CheckTransition(TypeAccess, "", "", StageIntake, StateReceived); err != nil {
		t.Error(err)
	}
	if err := CheckTransition(TypeAccess, "", "", StageDiscovery, StateInProgress); err == nil {
		t.Error("a request started at discovery")
	}
	if err := CheckTransition("bogus", "", "", StageIntake, StateReceived); err == nil {
		t.Error("a type without a route started")
	}
}

func TestNextSkipsOptionalSteps(t *testing.T) {
	yes := func(Step) bool { return true }
	for _, tc := range []struct {
		typ   Type
		from  Stage
		take  func(Step) bool
		want  Stage
		found bool
	}{
		{TypeErasure, StageDiscovery, yes, StageApproval, true},
		{TypeErasure, StageDiscovery, nil, StageErasure, true},
		{TypeRestriction, StageApproval, nil, StageRestriction, true},
		{TypeAccess, StageDiscovery, yes, StageApproval, true},
		{TypeAccess, StageDiscovery, nil, StageExport, true},
		{TypeAccess, StageApproval, nil, StageExport, true},
		{TypeDiscovery, StageApproval, nil, StageDone, true},
		{TypeAccess, StageDone, yes, "", false},
		{TypeAccess, StageErasure, yes, "", false},
	} {
		got, ok := Next(tc.typ, tc.from, tc.take)
		if got.Stage != tc.want || ok != tc.found {
			t.Errorf("Next(%s, %s) = %s %v, want %s %v", tc.typ, tc.from, got.Stage, ok, tc.want, tc.found)
		}
	}
}

package dsr

import (
	"fmt"
	"slices"
	"strings"
)

// Step is one stage of a request's route and the state a request has while
// it is there.
type Step struct {
	Stage Stage
	// State is in_progress for a stage the pipeline runs, awaiting_approval
	// for one that waits for a person; received at intake and completed at
	// done.
	State State
	// Optional steps are taken only when configured (approval:
	// DSR_APPROVAL_TYPES, or a request flagged as an Art. 12(5) repeat);
	// the others always.
	Optional bool
}

// Person reports whether the step waits for a person rather than a queue.
func (s Step) Person() bool {
	return s.State == StateAwaitingApproval || s.State == StateAwaitingVerification
}

var (
	stepIntake = Step{Stage: StageIntake, State: StateReceived}
	// stepIdentity is taken when the request's channel and type call for a
	// verified requester (DSR_VERIFY): it waits for the person's code.
	stepIdentity = Step{Stage: StageIdentity, State: StateAwaitingVerification, Optional: true}
	stepDiscover = Step{Stage: StageDiscovery, State: StateInProgress}
	stepApproval = Step{Stage: StageApproval, State: StateAwaitingApproval, Optional: true}
	stepDone     = Step{Stage: StageDone, State: StateCompleted}
	// stepNotify is taken when the sources config names recipients of
	// the datasets the request changed.
	stepNotify = Step{Stage: StageNotification, State: StateInProgress, Optional: true}
	// stepTransmit is taken when a portability request names another
	// controller (transmitTo).
	stepTransmit = Step{Stage: StageTransmission, State: StateInProgress, Optional: true}
)

func run(stage Stage) Step { return Step{Stage: stage, State: StateInProgress} }

// Routes is the path of every request type, in order, from intake to done:
// the one place that says where a request goes next. Routing, redrive, the
// sweeper and the dead-letter handling read it, and Advance refuses every
// move it does not allow. Adding a request type is a row here (and its
// runners, if it has stages of its own).
var Routes = map[Type][]Step{
	TypeAccess:        {stepIntake, stepIdentity, stepDiscover, stepApproval, run(StageExport), stepDone},
	TypeDiscovery:     {stepIntake, stepIdentity, stepDiscover, stepApproval, stepDone},
	TypeErasure:       {stepIntake, stepIdentity, stepDiscover, stepApproval, run(StageErasure), run(StageVerification), stepNotify, stepDone},
	TypeRectification: {stepIntake, stepIdentity, stepDiscover, stepApproval, run(StageRectification), run(StageVerification), stepNotify, stepDone},
	TypeRestriction:   {stepIntake, stepIdentity, stepDiscover, stepApproval, run(StageRestriction), stepNotify, stepDone},
	TypePortability:   {stepIntake, stepIdentity, stepDiscover, stepApproval, run(StageExport), stepTransmit, stepDone},
}

// routeIndex is the position of stage in t's route, or -1.
func routeIndex(t Type, stage Stage) int {
	return slices.IndexFunc(Routes[t], func(s Step) bool { return s.Stage == stage })
}

// Next is the step after stage on t's route: the following step, or, when
// it is optional and take says no, the one after it. ok is false after
// done or for a stage not on the route.
func Next(t Type, stage Stage, take func(Step) bool) (Step, bool) {
	route := Routes[t]
	i := routeIndex(t, stage)
	if i < 0 {
		return Step{}, false
	}
	for _, s := range route[i+1:] {
		if s.Optional && (take == nil || !take(s)) {
			continue
		}
		return s, true
	}
	return Step{}, false
}

// Before reports whether stage a comes before stage b on t's route.
func Before(t Type, a, b Stage) bool {
	i, j := routeIndex(t, a), routeIndex(t, b)
	return i >= 0 && j >= 0 && i < j
}

// ErrTransition is wrapped by every transition the route refuses.
var ErrTransition = fmt.Errorf("transition not allowed")

// CheckTransition says whether a request of type t at (from, fromState) may
// move to (to, toState):
//   - a new request starts at intake, received (from is "");
//   - nothing leaves a terminal state;
//   - an open request may fail or be cancelled where it stands;
//   - it may be rejected only while it awaits approval, and expire only
//     while it awaits verification;
//   - otherwise it moves forward along its route, to a later step (skipping
//     only optional ones) and into that step's state, never back.
//
// One move leaves a terminal state: a person re-drives a failed request
// (after fixing what made it fail), which puts it back into the state of
// the step where it failed, to run that step again. A step that waits for a
// person is not one a request fails at, and nothing else is re-driven.
func CheckTransition(t Type, from Stage, fromState State, to Stage, toState State) error {
	refuse := func(why string) error {
		return fmt.Errorf("%w: %s request from %s/%s to %s/%s: %s", ErrTransition, t, from, fromState, to, toState, why)
	}
	route, ok := Routes[t]
	if !ok {
		return refuse("no route for this type")
	}
	if from == "" {
		if to == StageIntake && toState == StateReceived {
			return nil
		}
		return refuse("a request starts at intake, received")
	}
	if fromState == StateFailed && to == from && toState != StateFailed {
		if i := routeIndex(t, from); i >= 0 && route[i].State == toState && !route[i].Person() && !toState.Terminal() {
			return nil
		}
		return refuse("a failed request is re-driven only into the state of the step where it failed")
	}
	if fromState.Terminal() {
		return refuse("the request has ended")
	}
	i := routeIndex(t, from)
	switch {
	case i < 0:
		return refuse("the request is at a stage its route does not have")
	case route[i].State != fromState:
		return refuse("at " + string(from) + " a request is " + string(route[i].State))
	}
	switch toState {
	case StateFailed, StateCancelled:
		if to != from {
			return refuse("a request fails or is cancelled where it stands")
		}
		return nil
	case StateRejected:
		if from != StageApproval || to != StageApproval {
			return refuse("only a request awaiting approval can be rejected")
		}
		return nil
	case StateExpired:
		if from != StageIdentity || to != StageIdentity {
			return refuse("only a request awaiting verification expires")
		}
		return nil
	}
	j := routeIndex(t, to)
	switch {
	case j < 0:
		return refuse("the route has no such stage")
	case j <= i:
		return refuse("requests only move forward")
	case route[j].State != toState:
		return refuse("at " + string(to) + " a request is " + string(route[j].State))
	}
	for _, s := range route[i+1 : j] {
		if !s.Optional {
			return refuse("it would skip " + string(s.Stage))
		}
	}
	return nil
}

// RouteTable renders Routes as the README shows them: one line per type,
// "(…)" around a stage that waits for a person, "[…]" around an optional
// one.
func RouteTable() string {
	var b strings.Builder
	for _, t := range Types {
		var parts []string
		for _, s := range Routes[t] {
			name := string(s.Stage)
			switch {
			case s.Person() && s.Optional:
				name = "[(" + name + ")]"
			case s.Person():
				name = "(" + name + ")"
			case s.Optional:
				name = "[" + name + "]"
			}
			parts = append(parts, name)
		}
		fmt.Fprintf(&b, "%-14s %s\n", string(t)+":", strings.Join(parts, " → "))
	}
	return b.String()
}

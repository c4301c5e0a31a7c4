package sources_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/multi"
)

// loyalty is a connector for a system of your own: here a loyalty-card
// system held in memory, with one dataset ("loyalty-cards") whose records
// are keyed by card number and found by email. It implements
// sources.Connector (discovery and reads) and sources.Rewriter (the
// pipeline decides each record's change).
type loyalty struct {
	cards map[string]map[string]any // card number → fields
}

func (l *loyalty) Discover(_ context.Context, subj sources.Subject) (*sources.Discovery, error) {
	m := sources.DatasetMatches{Dataset: "loyalty-cards"}
	var keys []string
	for card, f := range l.cards {
		email, _ := f["email"].(string)
		if slices.Contains(subj.Emails, strings.ToLower(strings.TrimSpace(email))) {
			keys = append(keys, card)
		}
	}
	slices.Sort(keys) // deterministic: the same data gives the same discovery
	if len(keys) > 0 {
		m.Records = int64(len(keys))
		m.Locations = []sources.Location{{Blob: "cards", Keys: keys}}
	}
	return &sources.Discovery{Datasets: []sources.DatasetMatches{m}}, nil
}

func (l *loyalty) Read(_ context.Context, m sources.DatasetMatches, emit func(sources.Record) error) error {
	for _, loc := range m.Locations {
		for _, card := range loc.Keys {
			f, ok := l.cards[card]
			if !ok {
				// Never act on stale positions: the pipeline discovers again.
				return fmt.Errorf("loyalty: a discovered card is gone: %w", sources.ErrChanged)
			}
			if err := emit(sources.Record{Fields: []sources.Field{{Name: "card", Value: card}, {Name: "email", Value: f["email"]}, {Name: "points", Value: f["points"]}}}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *loyalty) Rewrite(_ context.Context, _ string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	var res sources.RewriteResult
	for i, card := range loc.Keys {
		f, ok := l.cards[card]
		if !ok {
			res.Deleted++ // already gone: a retry after a crash is idempotent
			continue
		}
		next, err := edit(int64(i), sources.Record{Fields: []sources.Field{{Name: "card", Value: card}, {Name: "email", Value: f["email"]}, {Name: "points", Value: f["points"]}}})
		if err != nil {
			return res, err
		}
		if next == nil {
			delete(l.cards, card)
			res.Deleted++
			continue
		}
		for _, fld := range next.Fields {
			if fld.Name != "card" {
				f[fld.Name] = fld.Value
			}
		}
		res.Replaced++
	}
	return res, nil
}

// Example_customConnector shows a connector of your own combined with the
// others by multi, as open.Connectors does for the built-in kinds: one
// discovery, reads and changes dispatched by dataset.
func Example_customConnector() {
	own := &loyalty{cards: map[string]map[string]any{
		"4711": {"email": "Avery.Morgan@contoso.example", "points": 120},
		"4712": {"email": "avery.morgan@contoso.example.au", "points": 7},
	}}
	all, err := multi.New([]string{"loyalty-cards"}, multi.Part{Name: "loyalty", Datasets: []string{"loyalty-cards"}, Connector: own})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	disc, _ := all.Discover(ctx, sources.Subject{Emails: []string{"avery.morgan@contoso.example"}})
	fmt.Println("found", disc.Total(), "record(s)")
	_ = all.Read(ctx, disc.Datasets[0], func(r sources.Record) error {
		fmt.Println("export:", r.Fields[0].Value, r.Fields[2].Value)
		return nil
	})
	res, _ := all.Rewrite(ctx, "loyalty-cards", disc.Datasets[0].Locations[0], func(int64, sources.Record) (*sources.Record, error) {
		return nil, nil // erasure policy "delete"
	})
	fmt.Println("deleted", res.Deleted, "left", len(own.cards))
	// Output:
	// found 1 record(s)
	// export: 4711 120
	// deleted 1 left 1
}

package functions_test

import (
	"os"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// TestREADMEShowsTheStageTable: the README's architecture section shows
// the routes exactly as dsr.Routes declares them.
func TestREADMEShowsTheStageTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "```\n" + dsr.RouteTable() + "```"
	if !strings.Contains(string(b), want) {
		t.Errorf("README.md does not show the stage table as dsr.Routes declares it; it should hold:\n%s", want)
	}
}

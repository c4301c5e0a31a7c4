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

// TestREADMEListsEveryPackage: the README's folder table names every
// package folder under cmd/ and shared/ (a nested package may be named in
// its parent's row).
func TestREADMEListsEveryPackage(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"cmd", "shared"} {
		entries, err := os.ReadDir("../" + root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() && !strings.Contains(string(b), "| `"+root+"/"+e.Name()+"` |") {
				t.Errorf("README.md's folder table has no row for %s/%s", root, e.Name())
			}
		}
	}
}

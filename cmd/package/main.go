// Command package writes the deployable Functions app zip (see
// shared/packaging). `make package` builds the handler and runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/dsr-functions/dsr/shared/packaging"
)

func main() {
	out := flag.String("out", "dist/dsr-functions.zip", "zip to write")
	handler := flag.String("handler", "dist/handler", "linux/amd64 handler binary")
	sourcesPath := flag.String("sources", "sample/sources.json", "sources config to ship as sources.json")
	flag.Parse()
	f, err := os.Create(*out)
	if err == nil {
		var names []string
		names, err = packaging.Write(f, packaging.Inputs{Repo: os.DirFS("."), HandlerPath: *handler, SourcesPath: *sourcesPath})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			fmt.Printf("%s: %d entries\n", *out, len(names))
			return
		}
	}
	fmt.Fprintln(os.Stderr, "package:", err)
	os.Exit(1)
}

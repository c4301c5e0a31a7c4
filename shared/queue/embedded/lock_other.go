//go:build !unix

package embedded

import "os"

// lockDir does nothing where flock is not available: a second `dsr local`
// on the same folder would fail on its port first in the usual case.
func lockDir(string) (*os.File, error) { return nil, nil }

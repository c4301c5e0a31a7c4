package dsr

import "github.com/dsr-functions/dsr/shared/transmit"

// CheckTransmitTo says what is wrong with a portability request's
// transmitTo address (https, a public host; see shared/transmit), without
// repeating it; nil if it may be tried. Where the host name resolves is
// checked again when the package is sent.
func CheckTransmitTo(raw string) error { return transmit.CheckURL(raw) }

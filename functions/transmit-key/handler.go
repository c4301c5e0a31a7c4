// Package transmitkey is the transmit-key function: GET /api/transmit-key,
// the public key (a JSON Web Key Set) with which another controller checks
// that a portability package it received was sent by this deployment.
package transmitkey

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"

	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/transmit"
)

// KeySet is the answer: RFC 7517's JWK Set with the one signing key.
type KeySet struct {
	Keys []transmit.JWK `json:"keys"`
}

// New returns the handler; key is nil when this deployment does not
// transmit packages (no DSR_PSEUDONYM_SECRET), and it answers 404.
func New(key ed25519.PrivateKey) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key == nil {
			problem.Write(w, r, problem.New(http.StatusNotFound, "no-transmit-key", "No transmission key",
				"this deployment does not transmit packages to other controllers"))
			return
		}
		// A public key: receivers may cache it.
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(KeySet{Keys: []transmit.JWK{transmit.PublicJWK(key)}})
	})
}

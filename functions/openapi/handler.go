// Package openapi is the openapi function: GET /api/openapi.json, the API's
// OpenAPI 3.1 contract. The document is written by hand (openapi.json
// beside this file) and kept true by tests: every route of every
// function.json is in it and nothing else, its roles are the app's
// policies, and the end-to-end tests validate every response they receive
// against it.
package openapi

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
)

// Document is the OpenAPI document.
//
//go:embed openapi.json
var Document []byte

// etag identifies this build's document, so clients and caches revalidate
// cheaply.
var etag = func() string {
	sum := sha256.Sum256(Document)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// New returns the handler. The document is public: it describes routes and
// shapes, never data.
func New() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(Document)
	})
}

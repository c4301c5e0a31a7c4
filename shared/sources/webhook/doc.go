// Package webhook is the connector for "any other system": one the DSR
// service reaches by signed HTTP POSTs and that finds, returns, erases,
// rectifies and restricts the data subject's records itself. It implements
// sources.Connector (Discover, Read) and sources.Delegator (Delegates,
// Apply). PROTOCOL.md beside this file is the full protocol, written for
// whoever implements the receiving side, with a worked example.
//
// # Requests
//
// Every call is a POST to Config.URL with a JSON body
//
//	{"action": "access"|"erasure"|"rectification"|"restriction"|"lift-restriction",
//	 "requestId": "...", "subject": {...}, "datasets": ["..."],
//	 "corrections": {...},   // rectification only: "email", "phone" (+E.164), "name"
//	 "cursor": "...",        // access, pages after the first
//	 "callbackUrl": "..."}   // access, when async is enabled
//
// The subject is {"emails":[...],"phones":["+E164"...],"ids":{...}} in raw
// mode, or {"emailHashes":[...],"phoneHashes":[...],"idHashes":{...}} in
// hashed mode: each hash the hex HMAC-SHA256, under Config.HashKey, of the
// normalised value (email trimmed and lower-cased; phone E.164 with '+'; id
// trimmed). Hashed systems cannot be sent new values, so Apply refuses a
// rectification for them (ErrHashedRectification) without contacting them.
//
// # Signature
//
// Headers X-DSR-Timestamp (unix seconds) and X-DSR-Signature
// ("sha256=" + hex HMAC-SHA256(Config.Secret, timestamp + "." + body)) sign
// every request and every callback; Verify checks them (constant-time,
// rejecting timestamps too far from now). X-DSR-Request-Id carries the
// request id; Idempotency-Key is requestId:access (requestId:access:cursor
// for later pages) or requestId:action:dataset for a change. The system must
// apply a repeated change key once; we simply retry.
//
// # Access
//
// A 200 answer is {"records": {"<dataset>": [{"id": "...", ...}]}, "next": "..."}:
// every record holds its dataset's key field (Dataset.Key, default "id") as
// a non-empty string; records of datasets not configured, records without a
// key and repeated ids are errors. A non-empty "next" is POSTed back as
// "cursor" until it is empty. Answers are decoded as a stream, one record at
// a time, and all pages of one access together are capped at
// Config.MaxResponseBytes (ErrResponseTooLarge beyond). Field order is kept.
//
// Discover returns, per configured dataset, Location{Blob: "webhook", Keys:
// sorted ids} and the count. Read fetches again (only that dataset) and
// emits the records named by the location's Keys in Keys order; an id no
// longer returned fails with sources.ErrChanged before anything is emitted.
// Discover and Read learn the request from their context (WithRequest):
// its id for the protocol, and for Read the subject.
//
// # Asynchronous access
//
// With Config.CallbackBase set, access requests carry callbackUrl =
// CallbackBase + "/" + requestId and the system may answer 202: Discover
// then fails with an error wrapping ErrPending. The system POSTs the result
// to the callback URL later, signed the same way, shaped like a 200 answer
// plus "cursor" (the page it answers), in one or several pages. The
// Connector's CallbackHandler verifies, validates and stores each page
// create-only in a ResultStore (MemoryStore, or BlobStore in a Blob
// container) and, when the pages form a complete chain, marks the result
// complete and calls CallbackOptions.OnComplete. Discover and Read then use
// the stored result. ResultStore.Delete removes it when the request is done.
//
// # Changes
//
// Apply POSTs erasure, rectification, restriction or lift-restriction for
// one dataset; a 200 answer {"deleted":n,"masked":n,"retained":n,"changed":n}
// becomes a sources.ChangeResult, a 202 an error wrapping ErrPending (ask
// again later).
//
// # Failures
//
// Timeouts (Config.Timeout per attempt), connection errors, 408, 429 and
// 5xx are retried up to Config.MaxAttempts times with exponential back-off
// and jitter (Retry-After honoured on 429 and 503, capped at 60 s); other
// statuses fail at once; redirects are not followed. Failures are *Error
// values naming the system, datasets, action and reason; no error message
// ever contains a subject's identifiers or any text of the system's
// answers, and the package logs nothing.
package webhook

// Package backend holds what Greffier's HTTP backend clients (transcribe,
// summarize, diarize) share about a failed exchange: the typed HTTPError
// the job layer branches on (Temporary, RetryAfter), Retry-After parsing,
// and finding the server's message in an error body.
//
// It is a leaf under those clients: it must not import any other Greffier
// package, nor know which backend it serves beyond the name it is given,
// so that the clients can share it without importing one another.
package backend

// Package backend holds what Greffier's HTTP backend clients (transcribe,
// summarize, diarize) share about a failed exchange: the typed HTTPError
// the job layer branches on (Temporary, RetryAfter), Retry-After parsing,
// finding the server's message in an error body, and Backoff, the one
// policy of every wait between tries (River's retries of jobs, and the few
// loops that stay in process: uploads, streams, a summary's calls).
//
// It is a leaf under those clients: it must not import any other Greffier
// package, nor know which backend it serves beyond the name it is given,
// so that the clients (and the recorder, blob storage and jobs, for
// Backoff) can share it without importing one another.
package backend

package sfu

import (
	"net/http"

	"github.com/greffier/greffier/internal/httperr"
)

// Error codes of the JSON error body, stable for clients to branch on.
const (
	codeUnauthorized    = "unauthorized"
	codeForbidden       = "forbidden"
	codeMeetingNotFound = "meeting_not_found"
	codeMeetingEnded    = "meeting_ended"
	codeBadSDP          = "bad_sdp"
	codeNoOpus          = "no_opus_audio"
	codeTooLarge        = "sdp_too_large"
	codeMeetingFull     = "meeting_full"
	codeSessionNotFound = "session_not_found"
	codeMethod          = "method_not_allowed"
	codeMediaType       = "unsupported_media_type"
	codeUnavailable     = "unavailable"
	codeInternal        = "internal"
	codeStale           = "stale_etag"
	codePrecondition    = "precondition_required"
	codeTokenRevoked    = "token_revoked"
	codeTooManySections = "too_many_sections"
	codeNotRecordable   = "insufficient_storage"
	codeMoved           = "meeting_on_another_node"
)

// writeError answers in the JSON error body every Greffier answer uses.
func writeError(w http.ResponseWriter, status int, code, message string) {
	httperr.Write(w, status, code, message)
}

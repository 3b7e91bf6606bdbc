package sfu

import (
	"encoding/json"
	"net/http"
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
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	var body errorBody
	body.Error.Code = code
	body.Error.Message = message
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

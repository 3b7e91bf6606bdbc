package backend

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrorMessage finds the server's own message in an error body: the first
// of the top-level keys (default "error", then "detail") whose value is a
// non-empty string, an object with a "message" string (OpenAI's
// {"error":{"message":...}}), or a list of strings (NestJS validation,
// joined with "; "). It returns "" when the body is not JSON or has none.
//
// The keys are the caller's because backends differ: OpenAI-compatible
// servers put the message under "error" and FastAPI ones under "detail",
// while pyannote-style servers put it at the top level under "message"
// next to an "error" that only names the status.
func ErrorMessage(body []byte, keys ...string) string {
	if len(keys) == 0 {
		keys = []string{"error", "detail"}
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		return ""
	}
	for _, k := range keys {
		switch m := field(fields, k).(type) {
		case string:
			if m != "" {
				return m
			}
		case map[string]any:
			if s, ok := m["message"].(string); ok {
				return s
			}
		case []any:
			parts := make([]string, 0, len(m))
			for _, p := range m {
				if s, ok := p.(string); ok {
					parts = append(parts, s)
				}
			}
			if len(parts) > 0 {
				return strings.Join(parts, "; ")
			}
		}
	}
	return ""
}

// field is fields[k], matched without regard to case when no key is
// exactly k, as encoding/json matches struct fields.
func field(fields map[string]any, k string) any {
	if v, ok := fields[k]; ok {
		return v
	}
	for name, v := range fields {
		if strings.EqualFold(name, k) {
			return v
		}
	}
	return nil
}

// ParseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date
// (RFC 9110 10.2.3), as a wait from now. It returns 0 for an absent,
// unreadable or past value, and for more than a day, which no backend
// means.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || s > 86400 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Package usertext says what text that comes from callers may hold, and
// makes any text safe to show. Identities, names, titles and ids reach the
// database, subtitles and Markdown: a NUL byte is refused by Postgres, an
// escape sequence rewrites a terminal, a stray newline starts a cue. It
// knows nothing of HTTP, meetings or storage.
package usertext

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrControl is returned for text holding a control character.
var ErrControl = errors.New("holds a control character (NUL, ESC, a line break...)")

// CheckLine reports what is wrong with s as one line of text of at most
// maxRunes characters: invalid UTF-8, a control character or its length.
// The error names no field: callers say which.
func CheckLine(s string, maxRunes int) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > maxRunes {
		return fmt.Errorf("is %d characters long, over %d", n, maxRunes)
	}
	if strings.IndexFunc(s, isControl) >= 0 {
		return ErrControl
	}
	return nil
}

// isControl is true for the characters no line of user text needs: C0 and
// C1 controls, DEL, and the Unicode line and paragraph separators.
func isControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// Clean makes s safe to show on one line: invalid bytes become U+FFFD,
// line breaks and tabs become spaces, and other control characters are
// dropped. Text that needs no change is returned as is, without copying.
func Clean(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case isControl(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// MaxLanguageLen bounds a language tag (RFC 5646 advises supporting 35).
const MaxLanguageLen = 35

// ValidLanguage reports whether s looks like a BCP 47 language tag: a
// primary language of 2 or 3 letters (or an i-/x- tag), then subtags of 1
// to 8 letters or digits, joined by hyphens ("fr", "en-GB", "zh-Hant-TW").
// Empty means "let the backend detect" and is valid too.
func ValidLanguage(s string) bool {
	if s == "" {
		return true
	}
	if len(s) > MaxLanguageLen {
		return false
	}
	for i, sub := range strings.Split(s, "-") {
		if len(sub) < 1 || len(sub) > 8 {
			return false
		}
		for j := 0; j < len(sub); j++ {
			c := sub[j]
			letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !letter && (i == 0 || c < '0' || c > '9') {
				return false
			}
		}
		if i == 0 && (len(sub) < 2 || len(sub) > 3) && sub != "i" && sub != "x" {
			return false
		}
	}
	return true
}

// Package token issues and verifies the signed join tokens that let a
// participant publish or listen in one meeting. It knows nothing of HTTP or
// WebRTC: callers pass the bearer string and get verified claims back.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Right is one thing a join token allows.
type Right string

const (
	RightPublish Right = "publish"
	RightListen  Right = "listen"
	// RightName lets the participant choose the name shown for them
	// before joining (the identity, the speaker's key, stays the token's).
	RightName Right = "name"
	// RightMinutes lets the participant read this meeting's minutes with
	// the same token once they are ready.
	RightMinutes Right = "minutes"
)

// Known says whether r is a right Greffier knows.
func Known(r Right) bool {
	switch r {
	case RightPublish, RightListen, RightName, RightMinutes:
		return true
	}
	return false
}

// Claims is what a join token says about its bearer.
type Claims struct {
	// ID names this one token (JWT "jti"), so that it can be revoked
	// alone. Sign makes one when it is empty; tokens signed before ids
	// existed verify with an empty ID.
	ID          string
	MeetingID   string
	Identity    string // stable speaker key, the same across rejoins
	DisplayName string
	Rights      []Right
	ExpiresAt   time.Time
}

// Can reports whether the claims grant r.
func (c Claims) Can(r Right) bool {
	for _, have := range c.Rights {
		if have == r {
			return true
		}
	}
	return false
}

// NewID returns a fresh random token id.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// ErrInvalid is returned for any token that must be refused: forged, expired,
// malformed or missing fields. The wrapped message says which.
var ErrInvalid = errors.New("invalid join token")

const issuer = "greffier"

// Signer signs and verifies join tokens with one HMAC secret.
type Signer struct {
	secret []byte
	now    func() time.Time
}

// NewSigner returns a Signer for secret, which must be at least 32 bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("join token secret is %d bytes; it needs at least 32", len(secret))
	}
	return &Signer{secret: secret, now: time.Now}, nil
}

type jwtClaims struct {
	Name   string  `json:"name"`
	Rights []Right `json:"rights"`
	jwt.RegisteredClaims
}

// Sign returns a token for c. ExpiresAt must be in the future.
func (s *Signer) Sign(c Claims) (string, error) {
	if c.MeetingID == "" || c.Identity == "" {
		return "", fmt.Errorf("sign join token: meeting and identity are required")
	}
	if !c.ExpiresAt.After(s.now()) {
		return "", fmt.Errorf("sign join token: expiry %s is not in the future", c.ExpiresAt.Format(time.RFC3339))
	}
	if c.ID == "" {
		c.ID = NewID()
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{
		Name:   c.DisplayName,
		Rights: c.Rights,
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        c.ID,
			Issuer:    issuer,
			Subject:   c.Identity,
			Audience:  jwt.ClaimStrings{c.MeetingID},
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			IssuedAt:  jwt.NewNumericDate(s.now()),
		},
	})
	signed, err := tok.SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("sign join token: %w", err)
	}
	return signed, nil
}

// Verify checks raw's signature and expiry and returns its claims. Every
// failure wraps ErrInvalid.
func (s *Signer) Verify(raw string) (Claims, error) {
	var jc jwtClaims
	_, err := jwt.ParseWithClaims(raw, &jc, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if jc.Subject == "" || len(jc.Audience) != 1 || jc.Audience[0] == "" {
		return Claims{}, fmt.Errorf("%w: token names no meeting or identity", ErrInvalid)
	}
	return Claims{
		ID:          jc.ID,
		MeetingID:   jc.Audience[0],
		Identity:    jc.Subject,
		DisplayName: jc.Name,
		Rights:      jc.Rights,
		ExpiresAt:   jc.ExpiresAt.Time,
	}, nil
}

// FromAuthorization returns the credentials of an Authorization header
// value of the Bearer scheme. The scheme's name is case-insensitive (RFC
// 9110 §11.1), so "bearer x" and "BEARER x" are "Bearer x"; the token
// itself is returned as sent, without surrounding spaces.
func FromAuthorization(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	raw := strings.TrimSpace(rest)
	return raw, raw != ""
}

package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// KeySize is the length of every key here: AES-256.
const KeySize = 32

// KEK is the operator's key-encryption key. It never leaves the process:
// the database holds only data keys wrapped by it, and the KEK's ID.
type KEK struct {
	// ID names the key without revealing it: the first 16 hex digits of
	// SHA-256("greffier kek" | key).
	ID   string
	aead cipher.AEAD
}

// NewKEK makes a KEK of 32 key bytes.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal: a key-encryption key is %d bytes, got %d", KeySize, len(key))
	}
	aead, err := NewAEAD(key)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("greffier kek"), key...))
	return &KEK{ID: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// LoadKEK reads a KEK from a file holding 32 raw bytes, or 32 bytes in hex
// (64 digits) or standard base64, surrounding white space ignored.
func LoadKEK(path string) (*KEK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: read key-encryption key: %w", err)
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("seal: key-encryption key %s: %w", path, err)
	}
	return NewKEK(key)
}

func parseKey(b []byte) ([]byte, error) {
	if len(b) == KeySize {
		return b, nil
	}
	t := bytes.TrimSpace(b)
	if k, err := hex.DecodeString(string(t)); err == nil && len(k) == KeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(string(t)); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, errors.New("want 32 random bytes, as raw bytes, 64 hex digits or base64 " +
		"(make one with: head -c 32 /dev/urandom | base64 > kek)")
}

// NewAEAD is AES-256-GCM under key.
func NewAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead, nil
}

// Wrap seals a data key for one meeting: random nonce | ciphertext. The
// meeting's id and the KEK's are authenticated with it, so a wrapped key
// copied to another meeting's row does not unwrap.
func (k *KEK) Wrap(meetingID string, dataKey []byte) ([]byte, error) {
	n := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(dataKey)+k.aead.Overhead())
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("seal: wrap nonce: %w", err)
	}
	return k.aead.Seal(n, n, dataKey, k.wrapAD(meetingID)), nil
}

// Unwrap opens what Wrap sealed for meetingID.
func (k *KEK) Unwrap(meetingID string, wrapped []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(wrapped) < ns+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: wrapped key of meeting %s is %d bytes", ErrOpen, meetingID, len(wrapped))
	}
	key, err := k.aead.Open(nil, wrapped[:ns], wrapped[ns:], k.wrapAD(meetingID))
	if err != nil {
		return nil, fmt.Errorf("%w: data key of meeting %s under key-encryption key %s: %w", ErrOpen, meetingID, k.ID, err)
	}
	return key, nil
}

func (k *KEK) wrapAD(meetingID string) []byte {
	return []byte("greffier data key|" + k.ID + "|" + meetingID)
}

package seal

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/greffier/greffier/internal/store"
)

// ErrNoKey is wrapped by the error for a meeting whose data key does not
// exist: never made, or destroyed when the meeting was deleted.
var ErrNoKey = errors.New("no data key")

// KeyStore keeps wrapped data keys (the database).
type KeyStore interface {
	DataKey(ctx context.Context, meetingID string) (store.DataKey, error)
	AddDataKey(ctx context.Context, k store.DataKey) (store.DataKey, error)
}

// Keyring hands out meetings' data keys, made on first use, wrapped by the
// KEK in the KeyStore. Unwrapped keys are cached in memory only, for the
// life of the process or until Forget.
type Keyring struct {
	kek   *KEK
	store KeyStore

	mu    sync.Mutex
	cache map[string]dataKey
}

// dataKey is a meeting's unwrapped key, ready for use.
type dataKey struct {
	aead  cipher.AEAD
	spool []byte // derived for the recorder's spool (SpoolKey)
}

// NewKeyring wraps new keys with kek and unwraps keys wrapped by it.
func NewKeyring(kek *KEK, keys KeyStore) *Keyring {
	return &Keyring{kek: kek, store: keys, cache: map[string]dataKey{}}
}

// KEKID names the key-encryption key in use.
func (k *Keyring) KEKID() string { return k.kek.ID }

// AEAD returns the meeting's data key as AES-256-GCM. With create, a
// meeting without a key gets one; without, it is an ErrNoKey error.
func (k *Keyring) AEAD(ctx context.Context, meetingID string, create bool) (cipher.AEAD, error) {
	dk, err := k.key(ctx, meetingID, create)
	return dk.aead, err
}

// SpoolKey is the key the recorder encrypts the meeting's spool files
// with, made with the meeting's data key when there is none yet. It is
// derived from the data key (HKDF-SHA256), so that the spool's records and
// the stored objects' AES-GCM never share a key, and it dies with it.
func (k *Keyring) SpoolKey(ctx context.Context, meetingID string) ([]byte, error) {
	dk, err := k.key(ctx, meetingID, true)
	return dk.spool, err
}

func (k *Keyring) key(ctx context.Context, meetingID string, create bool) (dataKey, error) {
	k.mu.Lock()
	cached, ok := k.cache[meetingID]
	k.mu.Unlock()
	if ok {
		return cached, nil
	}
	dk, err := k.store.DataKey(ctx, meetingID)
	switch {
	case errors.Is(err, store.ErrNotFound) && create:
		if dk, err = k.add(ctx, meetingID); err != nil {
			return dataKey{}, err
		}
	case errors.Is(err, store.ErrNotFound):
		return dataKey{}, fmt.Errorf("seal: meeting %s: %w (the meeting was deleted, or its objects were not written by Greffier)", meetingID, ErrNoKey)
	case err != nil:
		return dataKey{}, fmt.Errorf("seal: %w", err)
	}
	if dk.KEKID != k.kek.ID {
		return dataKey{}, fmt.Errorf("seal: the data key of meeting %s is wrapped by key-encryption key %s, not by %s, the one configured: "+
			"configure %s as the previous key so it is re-wrapped at start", meetingID, dk.KEKID, k.kek.ID, dk.KEKID)
	}
	raw, err := k.kek.Unwrap(meetingID, dk.Wrapped)
	if err != nil {
		return dataKey{}, err
	}
	var out dataKey
	if out.aead, err = NewAEAD(raw); err != nil {
		return dataKey{}, err
	}
	if out.spool, err = hkdf.Key(sha256.New, raw, nil, "greffier spool", KeySize); err != nil {
		return dataKey{}, fmt.Errorf("seal: derive spool key: %w", err)
	}
	k.mu.Lock()
	k.cache[meetingID] = out
	k.mu.Unlock()
	return out, nil
}

func (k *Keyring) add(ctx context.Context, meetingID string) (store.DataKey, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return store.DataKey{}, fmt.Errorf("seal: new data key: %w", err)
	}
	wrapped, err := k.kek.Wrap(meetingID, raw)
	if err != nil {
		return store.DataKey{}, err
	}
	dk, err := k.store.AddDataKey(ctx, store.DataKey{MeetingID: meetingID, KEKID: k.kek.ID, Wrapped: wrapped})
	if err != nil {
		return store.DataKey{}, fmt.Errorf("seal: %w", err)
	}
	return dk, nil
}

// Forget drops the meeting's key from memory, so that once its row is
// deleted nothing here can open its objects any more.
func (k *Keyring) Forget(meetingID string) {
	k.mu.Lock()
	delete(k.cache, meetingID)
	k.mu.Unlock()
}

// Rewrapper is what Rewrap needs of the database.
type Rewrapper interface {
	DataKeys(ctx context.Context, kekID string, other bool) ([]store.DataKey, error)
	RewrapDataKey(ctx context.Context, fromKEK string, k store.DataKey) (bool, error)
}

// Rewrap re-wraps every data key wrapped by previous with current, and
// says how many it re-wrapped. The audio is not touched: only the 60-byte
// wrapped keys change. It is safe to run again after a crash part-way.
func Rewrap(ctx context.Context, db Rewrapper, previous, current *KEK) (int, error) {
	if previous.ID == current.ID {
		return 0, fmt.Errorf("seal: the previous key-encryption key is the current one (%s)", current.ID)
	}
	keys, err := db.DataKeys(ctx, previous.ID, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, dk := range keys {
		raw, err := previous.Unwrap(dk.MeetingID, dk.Wrapped)
		if err != nil {
			return n, err
		}
		wrapped, err := current.Wrap(dk.MeetingID, raw)
		if err != nil {
			return n, err
		}
		ok, err := db.RewrapDataKey(ctx, previous.ID, store.DataKey{MeetingID: dk.MeetingID, KEKID: current.ID, Wrapped: wrapped})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// Unknown lists the meetings whose data key is not wrapped by kek: keys
// that kek cannot open.
func Unknown(ctx context.Context, db Rewrapper, kek *KEK) ([]store.DataKey, error) {
	return db.DataKeys(ctx, kek.ID, true)
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/seal"
	"github.com/greffier/greffier/internal/store"
)

// sealBlobs puts the sealing store over blobs when a key-encryption key is
// configured, after re-wrapping the data keys of a previous KEK, and says
// in one line how stored bytes are protected.
func sealBlobs(ctx context.Context, cfg Config, st *store.Store, blobs blob.Store, log *slog.Logger) (blob.Store, *seal.Keyring, string, error) {
	sse := ""
	if cfg.S3SSEKMSKeyID != "" {
		sse = "; S3 server-side encryption with KMS key " + cfg.S3SSEKMSKeyID
	}
	if cfg.KEKFile == "" {
		return blobs, nil, "NOT encrypted by Greffier (no " + settingByName("kek-file").Flags() + ")" + sse, nil
	}
	kek, err := seal.LoadKEK(cfg.KEKFile)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", settingByName("kek-file").Flags(), err)
	}
	if cfg.KEKPreviousFile != "" {
		previous, err := seal.LoadKEK(cfg.KEKPreviousFile)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: %w", settingByName("kek-previous-file").Flags(), err)
		}
		n, err := seal.Rewrap(ctx, st, previous, kek)
		if err != nil {
			return nil, nil, "", fmt.Errorf("re-wrap data keys from key-encryption key %s to %s: %w", previous.ID, kek.ID, err)
		}
		log.Info("data keys re-wrapped with the new key-encryption key; the previous one may be destroyed once the database is backed up",
			"from_kek", previous.ID, "to_kek", kek.ID, "meetings", n)
	}
	unknown, err := seal.Unknown(ctx, st, kek)
	if err != nil {
		return nil, nil, "", err
	}
	if len(unknown) > 0 {
		ids := map[string]int{}
		for _, k := range unknown {
			ids[k.KEKID]++
		}
		var list []string
		for id, n := range ids {
			list = append(list, fmt.Sprintf("%s (%d meetings)", id, n))
		}
		return nil, nil, "", fmt.Errorf("the key-encryption key in %s is %s, but data keys in the database are wrapped by %s: "+
			"point %s at the right file, or, to rotate, %s at the old key and %s at the new one",
			cfg.KEKFile, kek.ID, strings.Join(list, ", "), settingByName("kek-file").Flags(),
			settingByName("kek-previous-file").Flags(), settingByName("kek-file").Flags())
	}
	keys := seal.NewKeyring(kek, st)
	return seal.NewStore(blobs, keys), keys,
		"encrypted (AES-256-GCM per meeting, data keys wrapped by key-encryption key " + kek.ID + "; spool AES-256-GCM records)" + sse, nil
}

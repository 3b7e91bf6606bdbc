package jobs

import "github.com/greffier/greffier/recorder"

// The recorder records its tracks in the pipeline's catalog.
var _ recorder.Catalog = (*Catalog)(nil)

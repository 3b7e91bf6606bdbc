package archive

import "github.com/greffier/greffier/internal/audio"

// errCorrupt says the input stops making sense as EBML: the toolbox's
// error, so reading and muxing say it alike.
var errCorrupt = audio.ErrCorruptWebM

package transcribe

import "strings"

// MaxVocabularyPrompt bounds, in bytes, the part of a prompt that lists
// Request.Vocabulary. Whisper-class models keep the last 224 tokens of a
// prompt (about 900 characters of English); the vocabulary leads, so a
// long one would push out the speaker's previous words, which matter more:
// terms past the bound are left out whole.
const MaxVocabularyPrompt = 600

// Prompt is the prompt sent for req to a backend that takes one: its
// vocabulary as a list ("Conseil municipal, Alice Martin, Bob Durand."),
// then its Prompt, the speaker's previous words, which a model reads as
// the text it continues from.
func Prompt(req Request) string {
	var b strings.Builder
	for _, term := range req.Vocabulary {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		if b.Len()+len(", ")+len(term)+len(".") > MaxVocabularyPrompt {
			break
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(term)
	}
	if b.Len() > 0 {
		b.WriteString(".")
	}
	if p := strings.TrimSpace(req.Prompt); p != "" {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString(p)
	}
	return b.String()
}

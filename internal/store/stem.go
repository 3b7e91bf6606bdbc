package store

import "strings"

// Stemming for search: light, inflectional stemmers for French and
// English, written here because no Snowball module is served to this
// project. They take folded words (fold: lower case, no accents) and strip
// what inflection adds (plurals, feminine, verb endings, English -ed and
// -ing), so that "élections" finds "élection" and "voted" finds "vote".
// They do not strip derivations ("électoral" stays apart from
// "élection"): a light stemmer errs towards precision, and a prefix query
// ("électo*") reaches the derived forms. The index and the query use the
// same functions, so what matters is that they agree, not that a stem is
// a dictionary word.

// stemmer names a language's stemmer: the index language of a segment.
type stemmer func(string) string

// stemmerFor returns the stemmer of an index language ("fr", "en"); other
// languages are indexed folded but unstemmed.
func stemmerFor(lang string) stemmer {
	switch lang {
	case "fr":
		return stemFrench
	case "en":
		return stemEnglish
	}
	return func(w string) string { return w }
}

// indexLanguage reduces a meeting's or a backend's language to an index
// language: "fr", "en", or "" (no stemming). The meeting's, when set, wins:
// the host said what is spoken.
func indexLanguage(meeting, segment string) string {
	for _, l := range []string{meeting, segment} {
		l = strings.ToLower(strings.TrimSpace(l))
		if i := strings.IndexAny(l, "-_"); i > 0 {
			l = l[:i]
		}
		switch l {
		case "fr", "fra", "fre", "french", "français", "francais":
			return "fr"
		case "en", "eng", "english", "anglais":
			return "en"
		case "":
			continue
		default:
			return ""
		}
	}
	return ""
}

// frenchSuffixes are stripped longest first, once, when at least
// minFrenchStem letters remain. They are inflections: verb endings, and
// the plural and feminine already reduced by the steps before.
var frenchSuffixes = []string{
	"eraient", "issions", "issiez", "issent", "issons", "issait", "issais", "issant",
	"erions", "eriez", "erons", "eront", "erais", "erait", "assent", "aient", "assiez",
	"iez", "ions", "ons", "ent", "ait", "ais", "ant", "era", "ira",
	"er", "ez", "ir", "ee", "es", "ai", "is", "it", "ie",
	"e", "i",
}

const minFrenchStem = 3

// frenchVerbS are verb endings in -s that the plural step would spoil;
// plain -ons and -ions are left to it, since most words ending so are
// nouns (élections, maisons).
var frenchVerbS = []string{"erions", "issions", "issons", "erons", "erais", "issais"}

func stemFrench(w string) string {
	if len(w) <= minFrenchStem {
		return w
	}
	for _, suf := range frenchVerbS {
		if strings.HasSuffix(w, suf) && len(w)-len(suf) >= minFrenchStem {
			return w[:len(w)-len(suf)]
		}
	}
	// Plurals: -aux of -al words (chevaux, cheval), -eaux, -x and -s.
	switch {
	case strings.HasSuffix(w, "eaux"):
		w = w[:len(w)-1]
	case strings.HasSuffix(w, "aux") && len(w) > 4:
		w = w[:len(w)-2] + "l"
	case strings.HasSuffix(w, "x") && len(w) > 4:
		w = w[:len(w)-1]
	case strings.HasSuffix(w, "s") && len(w) > 3 && !strings.HasSuffix(w, "ss"):
		w = w[:len(w)-1]
	}
	// Feminine and agreement: -elle/-el, -enne/-en, -euse/-eur, -ive/-if.
	switch {
	case strings.HasSuffix(w, "elle") && len(w) > 5:
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "enne") && len(w) > 5:
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "euse") && len(w) > 5:
		w = w[:len(w)-2] + "r"
	case strings.HasSuffix(w, "ive") && len(w) > 5:
		w = w[:len(w)-2] + "f"
	}
	for _, suf := range frenchSuffixes {
		if strings.HasSuffix(w, suf) && len(w)-len(suf) >= minFrenchStem {
			w = w[:len(w)-len(suf)]
			break
		}
	}
	// A doubled final consonant (appell-, jett-) stands for the single one.
	if n := len(w); n > minFrenchStem && w[n-1] == w[n-2] && w[n-1] < 0x80 && !isVowel(w[n-1]) {
		w = w[:n-1]
	}
	return w
}

// stemEnglish is step 1 of Porter's algorithm: plurals (1a), -ed and -ing
// (1b), and a final y after a vowel-bearing stem (1c); the derivational
// steps 2 to 5 are left out.
func stemEnglish(w string) string {
	if len(w) <= 2 {
		return w
	}
	// 1a
	switch {
	case strings.HasSuffix(w, "sses"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "ies"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "ss"):
	case strings.HasSuffix(w, "s"):
		w = w[:len(w)-1]
	}
	// 1b
	again := false
	switch {
	case strings.HasSuffix(w, "eed"):
		if porterMeasure(w[:len(w)-3]) > 0 {
			w = w[:len(w)-1]
		}
	case strings.HasSuffix(w, "ed") && hasVowel(w[:len(w)-2]):
		w, again = w[:len(w)-2], true
	case strings.HasSuffix(w, "ing") && hasVowel(w[:len(w)-3]):
		w, again = w[:len(w)-3], true
	}
	if again {
		n := len(w)
		switch {
		case strings.HasSuffix(w, "at"), strings.HasSuffix(w, "bl"), strings.HasSuffix(w, "iz"):
			w += "e"
		case n >= 2 && w[n-1] == w[n-2] && w[n-1] < 0x80 && !isVowel(w[n-1]) && w[n-1] != 'l' && w[n-1] != 's' && w[n-1] != 'z':
			w = w[:n-1]
		case porterMeasure(w) == 1 && endsCVC(w):
			w += "e"
		}
	}
	// 1c
	if strings.HasSuffix(w, "y") && hasVowel(w[:len(w)-1]) {
		w = w[:len(w)-1] + "i"
	}
	return w
}

func isVowel(c byte) bool {
	switch c {
	case 'a', 'e', 'i', 'o', 'u', 'y':
		return true
	}
	return false
}

// porterConsonant follows Porter: y is a consonant at the start or after
// a vowel.
func porterConsonant(w string, i int) bool {
	switch w[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !porterConsonant(w, i-1)
	}
	return true
}

func hasVowel(w string) bool {
	for i := range len(w) {
		if !porterConsonant(w, i) {
			return true
		}
	}
	return false
}

// porterMeasure counts the vowel-consonant sequences of w, Porter's m.
func porterMeasure(w string) int {
	m, prevVowel := 0, false
	for i := range len(w) {
		c := porterConsonant(w, i)
		if c && prevVowel {
			m++
		}
		prevVowel = !c
	}
	return m
}

// endsCVC: consonant, vowel, consonant other than w, x or y.
func endsCVC(w string) bool {
	n := len(w)
	if n < 3 || !porterConsonant(w, n-1) || porterConsonant(w, n-2) || !porterConsonant(w, n-3) {
		return false
	}
	switch w[n-1] {
	case 'w', 'x', 'y':
		return false
	}
	return true
}

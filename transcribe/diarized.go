package transcribe

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Limits of diarized_json requests (gpt-4o-transcribe-diarize).
const (
	// ChunkingOver is the audio length above which chunking_strategy=auto
	// is sent; the server requires it beyond 30 s.
	ChunkingOver = 30 * time.Second
	// MaxKnownSpeakers is how many known speakers one request may name.
	MaxKnownSpeakers = 4
)

// transcribeDiarized asks for diarized_json. go-openai has no fields for
// it (chunking_strategy, known speakers, the answer's speaker), so the
// multipart request is built here and sent through the same exchange as
// every other call: same endpoint, client, auth and error handling.
func (o *OpenAI) transcribeDiarized(ctx, callCtx context.Context, req Request, up upload, language string) (Result, error) {
	audio := up.duration
	body, contentType, err := diarizedForm(o.cfg.Model, req, up, language, o.cfg.SendWAV)
	if err != nil {
		return Result{}, fmt.Errorf("transcribe: %w", err)
	}
	hreq, err := http.NewRequestWithContext(callCtx, http.MethodPost, o.endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("transcribe: build request: %w", err)
	}
	hreq.Header.Set("Content-Type", contentType)
	hreq.Header.Set("Accept", "application/json")
	if o.cfg.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	began := o.now()
	ex := &exchange{client: o.cfg.HTTPClient, endpoint: o.endpoint}
	_, _ = ex.Do(hreq) // its outcome is kept in ex
	o.cfg.Logger.DebugContext(ctx, "diarized transcription call", "endpoint", o.endpoint.String(), "audio", audio,
		"status", ex.status, "bytes", len(ex.body), "took", o.now().Sub(began))
	if err := o.exchangeError(ctx, callCtx, ex); err != nil {
		return Result{}, err
	}
	res, err := parseDiarized(ex.body, audio, language)
	if err != nil {
		return Result{}, fmt.Errorf("transcribe: %w", err)
	}
	return res, nil
}

// diarizedForm builds the multipart body of a diarized_json request. The
// known speakers' clips go as data URLs of their own format, or of WAV
// when the server reads nothing else.
func diarizedForm(model string, req Request, up upload, language string, sendWAV bool) ([]byte, string, error) {
	if len(req.KnownSpeakers) > MaxKnownSpeakers {
		return nil, "", fmt.Errorf("%w: %d known speakers, the backend takes at most %d", ErrInvalidRequest, len(req.KnownSpeakers), MaxKnownSpeakers)
	}
	audio := up.duration
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, up.name))
	h.Set("Content-Type", mimeType(up.audio))
	fw, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", fmt.Errorf("build form: %w", err)
	}
	if _, err := fw.Write(up.audio); err != nil {
		return nil, "", fmt.Errorf("build form: %w", err)
	}
	fields := [][2]string{{"model", model}, {"response_format", "diarized_json"}}
	if language != "" {
		fields = append(fields, [2]string{"language", language})
	}
	if audio > ChunkingOver {
		fields = append(fields, [2]string{"chunking_strategy", "auto"})
	}
	refs := make([]string, len(req.KnownSpeakers))
	for i, k := range req.KnownSpeakers {
		if strings.TrimSpace(k.Name) == "" || len(k.Audio) == 0 {
			return nil, "", fmt.Errorf("%w: known speaker %d needs a name and a clip", ErrInvalidRequest, i)
		}
		clip := k.Audio
		if detectFormat(clip) == formatUnknown {
			return nil, "", fmt.Errorf("%w: known speaker %d (%s): %w", ErrInvalidRequest, i, k.Name, errUnknownFormat(clip))
		}
		if sendWAV {
			if clip, err = audioAsWAV(clip); err != nil {
				return nil, "", fmt.Errorf("%w: known speaker %d (%s): %w", ErrInvalidRequest, i, k.Name, err)
			}
		}
		fields = append(fields, [2]string{"known_speaker_names[]", k.Name})
		refs[i] = "data:" + mimeType(clip) + ";base64," + base64.StdEncoding.EncodeToString(clip)
	}
	for _, ref := range refs {
		fields = append(fields, [2]string{"known_speaker_references[]", ref})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, "", fmt.Errorf("build form: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("build form: %w", err)
	}
	return b.Bytes(), mw.FormDataContentType(), nil
}

// mimeType is the media type of a WAV or Ogg Opus file.
func mimeType(b []byte) string {
	if detectFormat(b) == formatOggOpus {
		return "audio/ogg"
	}
	return "audio/wav"
}

type wireDiarizedSegment struct {
	Start   number `json:"start"`
	End     number `json:"end"`
	Text    string `json:"text"`
	Speaker string `json:"speaker"`
}

// wireDiarized is diarized_json: no language, no words, a speaker per
// segment.
type wireDiarized struct {
	Duration number                `json:"duration"`
	Text     string                `json:"text"`
	Segments []wireDiarizedSegment `json:"segments"`
}

// parseDiarized decodes and checks a diarized_json answer as parseAnswer
// does verbose_json; words are spread over their segments.
func parseDiarized(body []byte, audio time.Duration, language string) (Result, error) {
	var a wireDiarized
	if err := json.Unmarshal(body, &a); err != nil {
		return Result{}, fmt.Errorf("%w: decode diarized_json: %w", ErrBadAnswer, err)
	}
	res := Result{Language: language, Text: strings.TrimSpace(a.Text), Duration: audio}
	if a.Duration.set {
		d, err := toDuration(a.Duration.v)
		if err != nil || d < 0 {
			return Result{}, fmt.Errorf("%w: duration %v", ErrBadAnswer, a.Duration.v)
		}
		res.Duration = d
	}
	c := checker{limit: audio}
	for i, s := range a.Segments {
		start, end, err := c.span(s.Start, s.End)
		if err != nil {
			return Result{}, fmt.Errorf("%w: segment %d %q: %w", ErrBadAnswer, i, s.Text, err)
		}
		speaker := strings.TrimSpace(s.Speaker)
		if speaker == "" {
			return Result{}, fmt.Errorf("%w: segment %d %q has no speaker", ErrBadAnswer, i, s.Text)
		}
		res.Phrases = append(res.Phrases, Phrase{Text: strings.TrimSpace(s.Text), Start: start, End: end, Speaker: speaker})
	}
	if res.Text == "" {
		parts := make([]string, 0, len(res.Phrases))
		for _, s := range res.Phrases {
			parts = append(parts, s.Text)
		}
		res.Text = strings.Join(parts, " ")
	}
	res.Words = estimateWords(res, audio)
	res.WordsEstimated = len(res.Words) > 0
	return res, nil
}

package summarize

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	openai "github.com/sashabaranov/go-openai"
)

// call sends one chat completion and returns the reply's text and the
// model that wrote it.
//
// go-openai builds and sends the request, and decodes the answer; it is
// handed an exchange as its HTTPDoer, which keeps the raw status, headers
// and body, because go-openai's errors drop Retry-After and the body of
// non-JSON error pages.
func (s *Summarizer) call(ctx context.Context, system, user string) (content, model string, err error) {
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req := openai.ChatCompletionRequest{
		Model: s.cfg.Model,
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: system},
			{Role: openai.ChatMessageRoleUser, Content: user},
		},
		// max_tokens, not max_completion_tokens: every OpenAI-compatible
		// server takes it; only OpenAI's reasoning models refuse it.
		//lint:ignore SA1019 the deprecated field is the one self-hosted servers read
		MaxTokens: s.cfg.MaxAnswerTokens,
	}
	switch s.cfg.ResponseFormat {
	case ResponseFormatJSONObject:
		req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
	case ResponseFormatJSONSchema:
		req.ResponseFormat = &openai.ChatCompletionResponseFormat{
			Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
				Name: "meeting_summary", Schema: json.RawMessage(answerSchema), Strict: true,
			},
		}
	}
	ex := &exchange{client: s.cfg.HTTPClient}
	cc := s.base
	cc.HTTPClient = ex
	began := s.now()
	resp, sendErr := openai.NewClientWithConfig(cc).CreateChatCompletion(callCtx, req)
	s.cfg.Logger.DebugContext(ctx, "chat call", "model", s.cfg.Model, "prompt_tokens_estimate",
		EstimateTokens(system)+EstimateTokens(user), "status", ex.status, "bytes", len(ex.body), "took", s.now().Sub(began))

	switch {
	case errors.Is(ex.err, ErrBadAnswer):
		return "", "", ex.err
	case ex.err != nil:
		if ctx.Err() != nil {
			return "", "", context.Cause(ctx)
		}
		return "", "", newTransportError(ex.err, errors.Is(callCtx.Err(), context.DeadlineExceeded))
	case !ex.sent:
		return "", "", fmt.Errorf("build request: %w", sendErr)
	case ex.status < 200 || ex.status > 299:
		return "", "", newStatusError(ex.status, ex.header, ex.body, s.now())
	case sendErr != nil:
		return "", "", fmt.Errorf("%w: not a chat completion: %w (body starts %q)", ErrBadAnswer, sendErr, excerpt(string(ex.body)))
	case len(resp.Choices) == 0:
		return "", "", fmt.Errorf("%w: the answer has no choices", ErrBadAnswer)
	}
	choice := resp.Choices[0]
	if choice.FinishReason == openai.FinishReasonLength {
		return "", "", fmt.Errorf("%w: the reply was cut off at %d tokens; raise MaxAnswerTokens", errCutOff, s.cfg.MaxAnswerTokens)
	}
	model = resp.Model
	if model == "" {
		model = s.cfg.Model
	}
	return choice.Message.Content, model, nil
}

// exchange is the HTTPDoer of one go-openai call (see call).
type exchange struct {
	client *http.Client

	sent   bool
	status int
	header http.Header
	body   []byte
	err    error
}

func (e *exchange) Do(req *http.Request) (*http.Response, error) {
	e.sent = true
	resp, err := e.client.Do(req)
	if err != nil {
		e.err = err
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		e.err = fmt.Errorf("read answer: %w", err)
		return nil, e.err
	}
	if len(body) > maxAnswer {
		e.err = fmt.Errorf("%w: answer larger than %d bytes", ErrBadAnswer, maxAnswer)
		return nil, e.err
	}
	e.status, e.header, e.body = resp.StatusCode, resp.Header, body
	return &http.Response{
		Status: resp.Status, StatusCode: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}, nil
}

// errCutOff is an answer cut off at max_tokens: unusable, and not worth
// the same request again.
var errCutOff = fmt.Errorf("%w: cut off", ErrBadAnswer)

// answerSchema is answerShape as a JSON schema, inlined (no $ref) and
// strict (every property required, no others), as OpenAI's strict mode and
// vLLM's guided decoding both accept.
const answerSchema = `{"type":"object","additionalProperties":false,
"required":["language","abstract","topics","decisions","action_items"],
"properties":{
 "language":{"type":"string"},
 "abstract":{"type":"object","additionalProperties":false,"required":["text","turns"],
  "properties":{"text":{"type":"string"},"turns":{"type":"array","items":{"type":"string"}}}},
 "topics":{"type":"array","items":{"type":"object","additionalProperties":false,"required":["text","turns"],
  "properties":{"text":{"type":"string"},"turns":{"type":"array","items":{"type":"string"}}}}},
 "decisions":{"type":"array","items":{"type":"object","additionalProperties":false,"required":["text","turns"],
  "properties":{"text":{"type":"string"},"turns":{"type":"array","items":{"type":"string"}}}}},
 "action_items":{"type":"array","items":{"type":"object","additionalProperties":false,"required":["text","owner","due","turns"],
  "properties":{"text":{"type":"string"},"owner":{"type":"string"},"due":{"type":"string"},"turns":{"type":"array","items":{"type":"string"}}}}}}}`

package httperr

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoutesAnswerUnknownRoutesAndMethodsInJSON(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.PathValue("id"))) })
	mux.HandleFunc("DELETE /things/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := Routes(mux)

	serve := func(method, path string) (*httptest.ResponseRecorder, Body) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		var b Body
		if rec.Code >= 400 {
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b), rec.Body.String())
		}
		return rec, b
	}
	rec, _ := serve("GET", "/things/42")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "42", rec.Body.String(), "path values reach the handler")

	rec, b := serve("GET", "/nothing")
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Equal(t, "not_found", b.Error.Code)

	rec, b = serve("PUT", "/things/42")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Equal(t, "method_not_allowed", b.Error.Code)
	require.Contains(t, rec.Header().Get("Allow"), "GET")
	require.Contains(t, rec.Header().Get("Allow"), "DELETE")
}

package api

import (
	"context"
	"errors"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// A tool reached without the guard's principal (were the SDK to stop
// passing the request's context) is refused, not answered as anyone.
func TestMCPToolsRefuseACallWithoutItsKey(t *testing.T) {
	t.Parallel()
	called := false
	h := mcpBind(&API{}, func(mcpTools, context.Context, *mcp.CallToolRequest, mcpListIn) (*mcp.CallToolResult, mcpListOut, error) {
		called = true
		return nil, mcpListOut{}, nil
	})
	_, _, err := h(context.Background(), nil, mcpListIn{})
	require.True(t, errors.Is(err, errNoCaller))
	require.False(t, called)
	ctx := context.WithValue(context.Background(), principalKey{}, Principal{KeyID: "key_a", Role: RoleAgent})
	_, _, err = h(ctx, nil, mcpListIn{})
	require.NoError(t, err)
	require.True(t, called)
}

package oaierr_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cocoon-network/cocoon/gpu/oaierr"
)

func TestError(t *testing.T) {
	testCases := map[string]struct {
		err  oaierr.Error
		want string
	}{
		"param and code null": {
			err:  oaierr.Error{Status: 400, Type: "invalid_request_error", Message: "bad"},
			want: `{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}`,
		},
		"all fields": {
			err:  oaierr.Error{Status: 404, Type: "invalid_request_error", Param: "model", Code: "model_not_found", Message: "The model `x` does not exist."},
			want: `{"error":{"message":"The model ` + "`x`" + ` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
		},
		"html escaped as encoding/json does": {
			err:  oaierr.Error{Status: 500, Type: "server_error", Message: "<&>"},
			want: `{"error":{"message":"\u003c\u0026\u003e","type":"server_error","param":null,"code":null}}`,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			assert.Equal(tc.want, string(tc.err.JSON()))
			rec := httptest.NewRecorder()
			tc.err.Write(rec)
			assert.Equal(tc.err.Status, rec.Code)
			assert.Equal("application/json", rec.Header().Get("Content-Type"))
			assert.Equal(tc.want, rec.Body.String())
			assert.Equal(strconv.Itoa(len(tc.want)), rec.Header().Get("Content-Length"))
		})
	}
}

func TestWritePassesBodyThrough(t *testing.T) {
	assert := assert.New(t)
	rec := httptest.NewRecorder()
	body := `{"object":"error","message":"too long"}`
	oaierr.Write(rec, http.StatusUnprocessableEntity, []byte(body))
	assert.Equal(http.StatusUnprocessableEntity, rec.Code)
	assert.Equal(body, rec.Body.String())
}
